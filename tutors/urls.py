from django.urls import path

from .api import TutorDetailView, TutorListCreateView

urlpatterns = [
    path("", TutorListCreateView.as_view(), name="tutor-list"),
    path("<int:tutor_id>", TutorDetailView.as_view(), name="tutor-detail"),
]
