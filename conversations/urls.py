from django.urls import path

from . import views

# Mounted under /api/avatars/ by the project, beside the avatars app's routes.
urlpatterns = [
    path("<int:avatar_id>/knowledge", views.KnowledgeListView.as_view(), name="avatar-knowledge-list"),
    path("<int:avatar_id>/knowledge/<int:doc_id>", views.KnowledgeDetailView.as_view(), name="avatar-knowledge-detail"),
    path("<int:avatar_id>/conversations", views.ConversationListView.as_view(), name="avatar-conversation-list"),
    path(
        "<int:avatar_id>/conversations/<int:conversation_id>",
        views.ConversationDetailView.as_view(),
        name="avatar-conversation-detail",
    ),
]
