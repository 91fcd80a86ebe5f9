-- One row per assignment with its project's attributes: the centre of the assignments explore.
select
    a.id as assignment_id,
    a.company_id,
    a.profile_id as worker_id,
    a.project_id,
    p.name as project_name,
    p.region as project_region,
    a.role,
    a.shift,
    a.start_date,
    a.end_date,
    a.end_date is null as is_current
from silver.assignments as a
left join silver.projects as p
    on p.company_id = a.company_id and p.id = a.project_id
