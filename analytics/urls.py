from django.urls import path

from . import views

urlpatterns = [
    path("usage", views.UsageView.as_view(), name="analytics-usage"),
    path("usage.csv", views.UsageCsvView.as_view(), name="analytics-usage-csv"),
]
