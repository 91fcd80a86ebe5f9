-- Structural only: one row per CRM account, as last extracted. company_id is the tenant,
-- read from the extractor's _tenant field; timestamps arrive as ISO-8601 text and are cast.
select
    company_id,
    cast(id as bigint) as account_id,
    name as account_name,
    region,
    cast(created_at as timestamptz) as created_at,
    cast(updated_at as timestamptz) as updated_at
from bronze.crm.accounts
