-- Structural only: one row per room_type.created event.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    payload ->> '$.room_type_id' as room_type_id,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.code' as room_type_code,
    payload ->> '$.name' as room_type_name,
    cast(payload ->> '$.max_occupancy' as integer) as max_occupancy,
    cast(payload ->> '$.base_rate' as decimal(12, 2)) as base_rate,
    payload ->> '$.currency' as currency
from bronze.pms.events
where type = 'melmastoon.room_type.created.v1'
