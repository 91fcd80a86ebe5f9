-- Structural only: housekeeping tasks completed.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    payload ->> '$.task_id' as task_id,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.room_type_id' as room_type_id,
    payload ->> '$.room_number' as room_number,
    payload ->> '$.task_type' as task_type,
    cast(payload ->> '$.business_date' as date) as business_date,
    cast(payload ->> '$.duration_minutes' as integer) as duration_minutes,
    payload ->> '$.attendant_id' as attendant_id,
    payload ->> '$.reservation_id' as reservation_id
from bronze.pms.events
where type = 'melmastoon.housekeeping.task.completed.v1'
