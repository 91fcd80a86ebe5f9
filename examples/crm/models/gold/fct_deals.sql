-- One row per deal with its account's attributes: the fact sales reporting reads.
select
    d.company_id,
    d.deal_id,
    d.account_id,
    a.account_name,
    a.region,
    d.title,
    d.stage,
    d.amount,
    d.stage = 'won' as is_won,
    d.closed_on
from silver.deals as d
join silver.accounts as a
    on a.company_id = d.company_id and a.account_id = d.account_id
