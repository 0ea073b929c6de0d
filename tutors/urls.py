from django.urls import path

from .account_api import TutorAccountView
from .api import TutorDetailView, TutorListCreateView, TutorUsageView

urlpatterns = [
    path("", TutorListCreateView.as_view(), name="tutor-list"),
    path("<int:tutor_id>", TutorDetailView.as_view(), name="tutor-detail"),
    path("<int:tutor_id>/account", TutorAccountView.as_view(), name="tutor-account"),
    path("<int:tutor_id>/usage", TutorUsageView.as_view(), name="tutor-usage"),
]
