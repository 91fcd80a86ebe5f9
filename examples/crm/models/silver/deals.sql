-- Structural only: one row per deal, as last extracted. Amounts arrive as decimal text
-- (no float rounding in bronze) and are cast back to decimals here.
select
    company_id,
    cast(id as bigint) as deal_id,
    cast(account_id as bigint) as account_id,
    title,
    stage,
    cast(amount as decimal(12, 2)) as amount,
    cast(closed_on as date) as closed_on,
    cast(updated_at as timestamptz) as updated_at
from bronze.crm.deals
