-- Companies (the tenants themselves), as the workforce service knows them.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    name,
    industry,
    region,
    plan,
    cast(contracted_seats as integer) as contracted_seats,
    cast(is_active as boolean) as is_active,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.companies
