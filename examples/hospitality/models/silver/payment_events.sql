-- Structural only: payments captured and refunded.
select
    cast(event_id as varchar) as event_id,
    cast(tenant_id as varchar) as tenant_id,
    occurred_at at time zone 'UTC' as occurred_at,
    split_part(type, '.', 4) as event_name,
    coalesce(payload ->> '$.refund_id', payload ->> '$.payment_id') as transaction_id,
    payload ->> '$.payment_id' as payment_id,
    payload ->> '$.refund_id' as refund_id,
    payload ->> '$.reservation_id' as reservation_id,
    payload ->> '$.property_id' as property_id,
    cast(payload ->> '$.amount' as decimal(12, 2)) as amount,
    payload ->> '$.currency' as currency,
    payload ->> '$.method' as method,
    payload ->> '$.purpose' as purpose,
    payload ->> '$.reason' as refund_reason,
    cast(payload ->> '$.business_date' as date) as business_date
from bronze.pms.events
where type in ('melmastoon.billing.payment.captured.v1', 'melmastoon.billing.payment.refunded.v1')
