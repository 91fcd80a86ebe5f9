-- One row per tenant and date, from the tenant's earliest to its latest date in any event
-- (when it happened, or a stay, inventory, block or business date it names).
with dates as (
    select tenant_id, cast(occurred_at as date) as day from silver.reservation_events
    union all
    select tenant_id, arrival_date from silver.reservation_events
    union all
    select tenant_id, departure_date from silver.reservation_events
    union all
    select tenant_id, effective_from from silver.room_inventory
    union all
    select tenant_id, from_date from silver.out_of_order_blocks
    union all
    select tenant_id, to_date from silver.out_of_order_blocks
    union all
    select tenant_id, business_date from silver.payment_events
    union all
    select tenant_id, business_date from silver.housekeeping_tasks
),

days as (
    select tenant_id, cast(unnest(generate_series(min(day), max(day), interval 1 day)) as date) as d
    from dates
    where day is not null
    group by tenant_id
)

select
    tenant_id,
    d as calendar_date,
    year(d) as year,
    quarter(d) as quarter,
    month(d) as month,
    strftime(d, '%B') as month_name,
    cast(date_trunc('month', d) as date) as month_start,
    cast(date_trunc('week', d) as date) as week_start,
    isodow(d) as day_of_week,
    strftime(d, '%A') as day_name,
    isodow(d) in (4, 5) as is_weekend_night
from days
