-- Which worker works on which project, in which role and shift.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    cast(profile_id as varchar) as profile_id,
    cast(project_id as varchar) as project_id,
    role,
    shift,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.assignments
