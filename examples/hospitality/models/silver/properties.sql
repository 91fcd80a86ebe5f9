-- Structural only: one row per property.created event, the payload parsed into columns.
-- Every silver model here reads the one raw event table and keeps its own event types;
-- Strata dedupes by event_id, so a redelivered event counts once.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    payload ->> '$.property_id' as property_id,
    payload ->> '$.name' as property_name,
    payload ->> '$.city' as city,
    payload ->> '$.country' as country,
    cast(payload ->> '$.star_rating' as integer) as star_rating,
    payload ->> '$.timezone' as timezone,
    cast(payload ->> '$.opened_on' as date) as opened_on,
    payload ->> '$.currency' as currency
from bronze.pms.events
where type = 'melmastoon.property.created.v1'
