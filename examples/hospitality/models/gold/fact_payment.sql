-- One row per money movement: a payment captured or a refund. A transaction delivered twice
-- (same event) or re-sent (new event, same id) counts once: the event that happened last wins.
select
    tenant_id,
    transaction_id,
    case event_name when 'refunded' then 'refund' else 'capture' end as kind,
    payment_id,
    reservation_id,
    property_id,
    purpose,
    method,
    refund_reason,
    business_date as paid_on,
    occurred_at,
    amount,
    case when event_name = 'refunded' then -amount else amount end as net_amount,
    currency
from silver.payment_events
qualify row_number() over (
    partition by tenant_id, transaction_id order by occurred_at desc, event_id desc
) = 1
