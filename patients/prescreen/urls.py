"""Routes of the public pre-screening form (mounted at ``/prescreen/``)."""

from django.urls import path

from patients.prescreen import views

app_name = "prescreen"

urlpatterns = [
    path("", views.intro, name="intro"),
    path("step/<int:number>/", views.step, name="step"),
    path("restart/", views.restart, name="restart"),
    path("results/<str:token>/", views.results, name="results"),
    path("results/<str:token>/contact/", views.contact, name="contact"),
    path("results/<str:token>/thanks/", views.thanks, name="thanks"),
]
