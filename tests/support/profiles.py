"""The columns of the scaffolded example's bronze ``wfm.profiles`` records, as the tests
that write such bronze by hand need them (every value text, as the service sends it)."""

PROFILE_COLUMNS = (
    "id",
    "company_id",
    "rut",
    "first_name",
    "last_name",
    "email",
    "phone",
    "job_title",
    "status",
    "hired_on",
    "created_at",
    "updated_at",
    "deleted_at",
)
