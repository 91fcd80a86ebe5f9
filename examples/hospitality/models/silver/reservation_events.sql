-- Structural only: the reservation lifecycle, one row per event with the payload's fields
-- (null where an event type does not carry them). Which events win is gold's business.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    type as event_type,
    split_part(type, '.', 3) as event_name,
    payload ->> '$.reservation_id' as reservation_id,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.room_type_id' as room_type_id,
    cast(payload ->> '$.arrival_date' as date) as arrival_date,
    cast(payload ->> '$.departure_date' as date) as departure_date,
    cast(payload ->> '$.adults' as integer) as adults,
    cast(payload ->> '$.children' as integer) as children,
    payload ->> '$.channel' as channel,
    payload ->> '$.rate_plan' as rate_plan,
    cast(payload ->> '$.nightly_rate' as decimal(12, 2)) as nightly_rate,
    payload ->> '$.currency' as currency,
    payload ->> '$.change_reason' as change_reason,
    payload ->> '$.reason' as cancel_reason,
    payload ->> '$.cancelled_by' as cancelled_by,
    payload ->> '$.room_number' as room_number
from bronze.pms.events
where type in (
    'melmastoon.reservation.created.v1',
    'melmastoon.reservation.modified.v1',
    'melmastoon.reservation.cancelled.v1',
    'melmastoon.reservation.checked_in.v1',
    'melmastoon.reservation.checked_out.v1',
    'melmastoon.reservation.no_show.v1'
)
