import pytest

from avatars.models import Avatar
from tutors.models import Tutor

pytestmark = pytest.mark.django_db


def test_admin_creates_lists_updates_and_deletes_its_tutor(api):
    created = api.post("/api/tutors/", {"name": "Mr Lee", "description": "Physics"}, format="json")
    assert created.status_code == 201
    tutor_id = created.json()["id"]
    assert [t["name"] for t in api.get("/api/tutors/").json()] == ["Mr Lee"]
    patched = api.patch(f"/api/tutors/{tutor_id}", {"description": "Physics and maths"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "Physics and maths"
    deleted = api.delete(f"/api/tutors/{tutor_id}")
    assert deleted.json() == {"status": "success", "message": "Tutor 'Mr Lee' deleted successfully"}
    assert not Tutor.objects.filter(pk=tutor_id).exists()


def test_bad_tutor_input_is_a_400_naming_the_field(api, tutor):
    response = api.post("/api/tutors/", {"name": ""}, format="json")
    assert response.status_code == 400 and "name" in response.json()["detail"]
    response = api.patch(f"/api/tutors/{tutor.pk}", {"owner": 5}, format="json")
    assert response.status_code == 400
    assert "owner" in response.json()["detail"]


def test_another_admins_tutor_is_a_404_and_never_listed(api, other_api, tutor):
    assert other_api.get("/api/tutors/").json() == []
    for method in ("get", "patch", "delete"):
        response = getattr(other_api, method)(f"/api/tutors/{tutor.pk}", {"name": "x"}, format="json")
        assert response.status_code == 404, method
        assert "Ms Ada" not in response.content.decode()
    assert Tutor.objects.filter(pk=tutor.pk, name="Ms Ada").exists()


def test_operator_sees_every_tutor(client_for, operator, tutor):
    names = [t["name"] for t in client_for(operator).get("/api/tutors/").json()]
    assert names == ["Ms Ada"]


def test_deleting_a_tutor_deletes_its_avatars(api, tutor):
    Avatar.objects.create(tutor=tutor, name="a1", status="error")
    api.delete(f"/api/tutors/{tutor.pk}")
    assert not Avatar.objects.filter(name="a1").exists()
