-- One row per housekeeping task completed (a task re-sent counts once).
select
    tenant_id,
    task_id,
    property_id,
    room_type_id,
    room_number,
    task_type,
    business_date as completed_on,
    occurred_at as completed_at,
    duration_minutes,
    attendant_id,
    reservation_id,
    1 as tasks
from silver.housekeeping_tasks
qualify row_number() over (
    partition by tenant_id, task_id order by occurred_at desc, event_id desc
) = 1
