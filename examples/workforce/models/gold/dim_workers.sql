select
    id as worker_id,
    company_id,
    job_title,
    status,
    hired_on,
    status = 'active' as is_active
from silver.profiles
