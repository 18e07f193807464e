from django.urls import path

from apps.chat import views

app_name = "chat"

urlpatterns = [
    path("", views.chat_page, name="page"),
    path("<int:conversation_id>/", views.chat_page, name="conversation"),
    path("attach/", views.attachment_upload, name="attach"),
    path("attachments/<int:attachment_id>/", views.attachment_file, name="attachment"),
    path("validate/", views.validate, name="validate"),
    path("code/", views.view_code, name="code"),
    path("save/", views.save_prompt, name="save"),
]
