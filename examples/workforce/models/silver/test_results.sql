-- Drug, alcohol and fitness tests from the external labs (SaferApp, Fit2000).
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    lab,
    lab_code,
    nullif(trim(worker_rut), '') as worker_rut,
    cast(project_id as varchar) as project_id,
    test_type,
    cast(tested_at as timestamp) as tested_at,
    result,
    cast(result_value as double) as result_value,
    unit,
    cast(deleted_at as timestamp) as deleted_at
from bronze.labs.test_results
