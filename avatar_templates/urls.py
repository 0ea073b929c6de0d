from django.urls import path

from . import views

# Mounted at /api/avatar-templates/ by the project.
urlpatterns = [
    path("", views.AvatarTemplateListView.as_view(), name="avatar-template-list"),
    path("<int:template_id>", views.AvatarTemplateDetailView.as_view(), name="avatar-template-detail"),
]

# Mounted under /api/avatars/ (beside the avatars app's routes).
batch_urlpatterns = [
    path("batch", views.AvatarBatchCreateView.as_view(), name="avatar-batch-create"),
    path("batches/<int:batch_id>", views.AvatarBatchDetailView.as_view(), name="avatar-batch-detail"),
]
