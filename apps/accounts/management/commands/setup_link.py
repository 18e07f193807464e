from django.core.management.base import BaseCommand

from apps.accounts.services import setup_needed
from apps.accounts.views import setup_token


class Command(BaseCommand):
    help = "Print the one-time setup link (only while no user exists)."

    def add_arguments(self, parser):
        parser.add_argument("--base", default="http://127.0.0.1:8000", help="The address the server answers on.")

    def handle(self, *args, base: str, **options):
        if not setup_needed():
            self.stdout.write("Playground is set up: sign in at " + base.rstrip("/") + "/accounts/login/")
            return
        link = f"{base.rstrip('/')}/accounts/setup/?token={setup_token()}"
        self.stdout.write(self.style.SUCCESS("\n  First run: create the owner account at\n\n    " + link + "\n"))
