-- One row per property: its latest description and the rooms of its latest inventory settings.
with property as (
    select *
    from silver.properties
    qualify row_number() over (
        partition by tenant_id, property_id order by occurred_at desc, event_id desc
    ) = 1
),

latest_inventory as (
    select tenant_id, property_id, room_type_id, rooms
    from silver.room_inventory
    qualify row_number() over (
        partition by tenant_id, room_type_id
        order by effective_from desc, occurred_at desc, event_id desc
    ) = 1
),

rooms as (
    select tenant_id, property_id, count(*) as room_types, sum(rooms) as total_rooms
    from latest_inventory
    group by all
)

select
    p.tenant_id,
    p.property_id,
    p.property_name,
    p.city,
    p.country,
    p.star_rating,
    p.timezone,
    p.opened_on,
    coalesce(r.room_types, 0) as room_types,
    coalesce(r.total_rooms, 0) as total_rooms
from property as p
left join rooms as r on r.tenant_id = p.tenant_id and r.property_id = p.property_id
