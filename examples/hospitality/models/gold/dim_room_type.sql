-- One row per room type: its latest description and the rooms of its latest inventory setting.
with room_type as (
    select *
    from silver.room_types
    qualify row_number() over (
        partition by tenant_id, room_type_id order by occurred_at desc, event_id desc
    ) = 1
),

latest_inventory as (
    select tenant_id, room_type_id, rooms
    from silver.room_inventory
    qualify row_number() over (
        partition by tenant_id, room_type_id
        order by effective_from desc, occurred_at desc, event_id desc
    ) = 1
)

select
    t.tenant_id,
    t.room_type_id,
    t.property_id,
    t.room_type_code,
    t.room_type_name,
    t.max_occupancy,
    t.base_rate,
    coalesce(i.rooms, 0) as room_type_rooms
from room_type as t
left join latest_inventory as i on i.tenant_id = t.tenant_id and i.room_type_id = t.room_type_id
