-- Projects (faenas): sites where workers are assigned.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    code,
    name,
    region,
    status,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.projects
