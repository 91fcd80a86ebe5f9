-- One row per property, room type and night: rooms in inventory, out of order, available and
-- sold, and the room revenue of the night. Nights run from the room type's first inventory
-- setting to the tenant's last reserved night (the latest departure of any reservation, on
-- the books or not); a night with a sale but no inventory still gets a row (with nothing
-- available), so no sold room night is ever lost.
with settings as (
    -- a setting re-sent for the same date corrects it: the one that happened last wins
    select tenant_id, property_id, room_type_id, effective_from, rooms
    from silver.room_inventory
    qualify row_number() over (
        partition by tenant_id, room_type_id, effective_from
        order by occurred_at desc, event_id desc
    ) = 1
),

periods as (
    select
        *,
        lead(effective_from) over (
            partition by tenant_id, room_type_id order by effective_from
        ) as effective_until
    from settings
),

horizon as (
    select tenant_id, max(departure_date) as horizon_end
    from gold.fact_reservation
    group by all
),

inventory as (
    select
        p.tenant_id,
        p.property_id,
        p.room_type_id,
        c.calendar_date as stay_date,
        p.rooms as rooms_inventory
    from periods as p
    inner join horizon as h on h.tenant_id = p.tenant_id
    inner join gold.dim_calendar as c
        on
            c.tenant_id = p.tenant_id
            and c.calendar_date >= p.effective_from
            and (p.effective_until is null or c.calendar_date < p.effective_until)
            and c.calendar_date < h.horizon_end
),

blocks as (
    -- a block re-sent with the same block_id (shortened or extended) replaces the earlier one
    select *
    from silver.out_of_order_blocks
    qualify row_number() over (
        partition by tenant_id, block_id order by occurred_at desc, event_id desc
    ) = 1
),

out_of_order as (
    select i.tenant_id, i.room_type_id, i.stay_date, sum(b.rooms) as rooms
    from inventory as i
    inner join blocks as b
        on
            b.tenant_id = i.tenant_id
            and b.room_type_id = i.room_type_id
            and i.stay_date >= b.from_date
            and i.stay_date < b.to_date
    group by all
),

sold as (
    select
        r.tenant_id,
        r.property_id,
        r.room_type_id,
        c.calendar_date as stay_date,
        count(*) as rooms_sold,
        sum(r.nightly_rate) as room_revenue,
        count(*) filter (where c.calendar_date = r.arrival_date) as arrivals
    from gold.fact_reservation as r
    inner join gold.dim_calendar as c
        on
            c.tenant_id = r.tenant_id
            and c.calendar_date >= r.arrival_date
            and c.calendar_date < r.departure_date
    where r.is_sold
    group by all
),

currency as (
    select tenant_id, property_id, currency
    from silver.properties
    qualify row_number() over (
        partition by tenant_id, property_id order by occurred_at desc, event_id desc
    ) = 1
),

nights as (
    select
        coalesce(i.tenant_id, s.tenant_id) as tenant_id,
        coalesce(i.property_id, s.property_id) as property_id,
        coalesce(i.room_type_id, s.room_type_id) as room_type_id,
        coalesce(i.stay_date, s.stay_date) as stay_date,
        coalesce(i.rooms_inventory, 0) as rooms_inventory,
        least(coalesce(o.rooms, 0), coalesce(i.rooms_inventory, 0)) as rooms_out_of_order,
        coalesce(s.rooms_sold, 0) as rooms_sold,
        coalesce(s.arrivals, 0) as arrivals,
        cast(coalesce(s.room_revenue, 0) as decimal(14, 2)) as room_revenue
    from inventory as i
    left join out_of_order as o
        on
            o.tenant_id = i.tenant_id
            and o.room_type_id = i.room_type_id
            and o.stay_date = i.stay_date
    full outer join sold as s
        on
            s.tenant_id = i.tenant_id
            and s.room_type_id = i.room_type_id
            and s.stay_date = i.stay_date
)

select
    n.tenant_id,
    n.property_id,
    n.room_type_id,
    n.stay_date,
    n.rooms_inventory,
    n.rooms_out_of_order,
    n.rooms_inventory - n.rooms_out_of_order as rooms_available,
    n.rooms_sold,
    n.arrivals,
    n.room_revenue,
    c.currency
from nights as n
left join currency as c on c.tenant_id = n.tenant_id and c.property_id = n.property_id
