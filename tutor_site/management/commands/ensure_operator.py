import os

from django.core.management.base import BaseCommand

from tutors.services import operator_ensure


class Command(BaseCommand):
    help = "On a system with no account yet, create the operator account and print its login."

    def handle(self, *args, **options):
        created = operator_ensure(
            email=os.environ.get("DJANGO_SUPERUSER_EMAIL"), password=os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        )
        if created is None:
            return
        user, password = created
        self.stdout.write(self.style.SUCCESS("Created the operator account:"))
        self.stdout.write(f"  email:    {user.email}")
        if os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            self.stdout.write("  password: (from DJANGO_SUPERUSER_PASSWORD)")
        else:
            self.stdout.write(f"  password: {password}   (shown once; change it in the admin)")
