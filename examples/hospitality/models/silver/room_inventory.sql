-- Structural only: one row per inventory setting. A setting holds from effective_from until
-- the next setting of the same room type; a re-sent setting for the same date corrects it.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.room_type_id' as room_type_id,
    cast(payload ->> '$.effective_from' as date) as effective_from,
    cast(payload ->> '$.rooms' as integer) as rooms
from bronze.pms.events
where type = 'melmastoon.inventory.room_inventory.set.v1'
