-- Licenses held by workers; some expired, some about to.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    cast(profile_id as varchar) as profile_id,
    license_type,
    license_number,
    cast(issued_on as date) as issued_on,
    cast(expires_on as date) as expires_on,
    cast(verified as boolean) as verified,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.licenses
