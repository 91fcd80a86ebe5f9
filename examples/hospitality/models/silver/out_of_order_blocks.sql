-- Structural only: one row per out-of-order event. A block re-sent with the same block_id
-- (works ending earlier or later) supersedes the earlier event in gold, by occurred_at.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    payload ->> '$.block_id' as block_id,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.room_type_id' as room_type_id,
    cast(payload ->> '$.from_date' as date) as from_date,
    cast(payload ->> '$.to_date' as date) as to_date,
    cast(payload ->> '$.rooms' as integer) as rooms,
    payload ->> '$.reason' as reason
from bronze.pms.events
where type = 'melmastoon.inventory.rooms.out_of_order.v1'
