from django.core.management.base import BaseCommand, CommandError

from tutor_site.exceptions import ServiceError
from tutors.services import admin_create


class Command(BaseCommand):
    help = "Create an admin account that owns tutors (or an operator with --superuser)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument(
            "--password",
            help="Checked by the password validators (10+ characters, not common); random when omitted.",
        )
        parser.add_argument("--superuser", action="store_true", help="An operator who sees everything.")

    def handle(self, *args, email, password, superuser, **options):
        try:
            user, password_used = admin_create(email=email, password=password, superuser=superuser)
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        kind = "operator" if superuser else "admin"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} {user.email}"))
        if not password:
            self.stdout.write(f"Password: {password_used}")
