-- One row per reservation: its latest state, reading its events in the order they happened
-- (occurred_at, then event_id), never in the order they arrived.
--
-- * The stay (dates, room type, rate) is the last of `created` and the `modified` events that
--   happened before the reservation closed. It closes at its first cancellation, no-show or
--   check-out; a modification after that (a channel manager racing a cancellation) is ignored
--   and only counted in ignored_modifications.
-- * The status is the last lifecycle event: created -> confirmed, checked_in -> in_house,
--   checked_out -> checked_out, cancelled -> cancelled, no_show -> no_show.
-- * Sold (is_sold): confirmed, in_house and checked_out. Cancelled and no-show rooms are not.
with events as (
    select * from silver.reservation_events
),

closed as (
    select tenant_id, reservation_id, min(occurred_at) as closed_at
    from events
    where event_name in ('cancelled', 'no_show', 'checked_out')
    group by all
),

changes as (
    select e.*, c.closed_at is not null and e.occurred_at > c.closed_at as is_ignored
    from events as e
    left join closed as c
        on c.tenant_id = e.tenant_id and c.reservation_id = e.reservation_id
    where e.event_name in ('created', 'modified')
),

stay as (
    select *
    from changes
    where not is_ignored
    qualify row_number() over (
        partition by tenant_id, reservation_id order by occurred_at desc, event_id desc
    ) = 1
),

booking as (
    select *
    from events
    where event_name = 'created'
    qualify row_number() over (
        partition by tenant_id, reservation_id order by occurred_at, event_id
    ) = 1
),

status as (
    select
        tenant_id,
        reservation_id,
        occurred_at as status_at,
        case event_name
            when 'created' then 'confirmed'
            when 'checked_in' then 'in_house'
            else event_name
        end as status
    from events
    where event_name in ('created', 'checked_in', 'checked_out', 'cancelled', 'no_show')
    qualify row_number() over (
        partition by tenant_id, reservation_id order by occurred_at desc, event_id desc
    ) = 1
),

counts as (
    select
        tenant_id,
        reservation_id,
        count(*) filter (where event_name = 'modified' and not is_ignored) as modifications,
        count(*) filter (where event_name = 'modified' and is_ignored) as ignored_modifications
    from changes
    group by all
),

moments as (
    select
        tenant_id,
        reservation_id,
        min(occurred_at) filter (where event_name = 'cancelled') as cancelled_at,
        arg_min(cancel_reason, occurred_at) filter (where event_name = 'cancelled') as cancel_reason,
        min(occurred_at) filter (where event_name = 'checked_in') as checked_in_at,
        min(occurred_at) filter (where event_name = 'checked_out') as checked_out_at,
        arg_max(room_number, occurred_at) filter (where event_name = 'checked_in') as room_number
    from events
    group by all
),

state as (
    select
        s.tenant_id,
        s.reservation_id,
        s.property_id,
        s.room_type_id,
        b.channel,
        b.rate_plan,
        b.occurred_at as booked_at,
        cast(b.occurred_at as date) as booked_on,
        s.arrival_date,
        s.departure_date,
        date_diff('day', s.arrival_date, s.departure_date) as nights,
        s.adults,
        s.children,
        s.nightly_rate,
        s.currency,
        st.status,
        st.status_at,
        st.status in ('confirmed', 'in_house', 'checked_out') as is_sold,
        m.cancelled_at,
        m.cancel_reason,
        m.checked_in_at,
        m.checked_out_at,
        m.room_number,
        c.modifications,
        c.ignored_modifications
    from stay as s
    left join booking as b on b.tenant_id = s.tenant_id and b.reservation_id = s.reservation_id
    left join status as st on st.tenant_id = s.tenant_id and st.reservation_id = s.reservation_id
    left join moments as m on m.tenant_id = s.tenant_id and m.reservation_id = s.reservation_id
    left join counts as c on c.tenant_id = s.tenant_id and c.reservation_id = s.reservation_id
)

select
    *,
    date_diff('day', booked_on, arrival_date) as lead_time_days,
    cast(nightly_rate * nights as decimal(14, 2)) as stay_value,
    1 as bookings,
    case when is_sold then 1 else 0 end as sold_bookings,
    case when status = 'cancelled' then 1 else 0 end as cancellations,
    case when status = 'no_show' then 1 else 0 end as no_shows,
    case when status in ('in_house', 'checked_out', 'no_show') then 1 else 0 end as arrivals_due,
    case when is_sold then nights else 0 end as room_nights_sold,
    cast(case when is_sold then nightly_rate * nights else 0 end as decimal(14, 2)) as room_revenue
from state
