-- Structural only: cast, rename and tidy the service's worker profiles; no joins.
-- Strata keeps the latest ingested version per primary key and drops soft-deleted rows.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    nullif(trim(rut), '') as rut,
    first_name,
    last_name,
    lower(trim(email)) as email,
    phone,
    job_title,
    status,
    cast(hired_on as date) as hired_on,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.profiles
