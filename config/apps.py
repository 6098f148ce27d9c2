from django.contrib.admin.apps import AdminConfig


class WorkspaceAdminConfig(AdminConfig):
    default_site = "config.admin_site.WorkspaceAdminSite"
