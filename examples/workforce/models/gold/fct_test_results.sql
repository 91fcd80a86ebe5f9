-- Lab results per tenant and day, the base of pass-rate metrics.
select
    company_id,
    lab,
    test_type,
    cast(tested_at as date) as tested_on,
    count(*) as tests,
    count(*) filter (where result = 'pass') as passed,
    count(*) filter (where result = 'fail') as failed
from silver.test_results
group by all
