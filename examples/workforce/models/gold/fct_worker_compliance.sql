-- Compliance snapshots: one row per company, month-end date and worker (hired by then), for
-- the 12 calendar months ending with the month the company's data reaches. Snapshot dates
-- come from the data, never from the clock, so rebuilding the same data gives the same
-- table; the last month's snapshot is taken at its end, as the records stand.
with months as (
    select
        company_id,
        unnest(
            generate_series(
                date_trunc('month', max(day)) - interval 11 month,
                date_trunc('month', max(day)),
                interval 1 month
            )
        ) as month_start
    from (
        select company_id, cast(updated_at as date) as day from silver.licenses
        union all
        select company_id, cast(updated_at as date) as day from silver.assignments
        union all
        select company_id, cast(updated_at as date) as day from silver.profiles
    )
    group by company_id
),

snapshots as (
    select company_id, cast(month_start + interval 1 month - interval 1 day as date) as snapshot_date
    from months
),

assigned as (
    select s.company_id, s.snapshot_date, a.profile_id as worker_id, count(*) as assignments
    from snapshots as s
    inner join silver.assignments as a
        on
            a.company_id = s.company_id
            and a.start_date <= s.snapshot_date
            and (a.end_date is null or a.end_date >= s.snapshot_date)
    group by all
),

licensed as (
    select
        s.company_id,
        s.snapshot_date,
        l.profile_id as worker_id,
        count(*) filter (
            where l.verified and l.issued_on <= s.snapshot_date and s.snapshot_date <= l.expires_on
        ) as valid_licenses,
        count(*) filter (
            where
                l.issued_on <= s.snapshot_date
                and l.expires_on > s.snapshot_date
                and l.expires_on <= s.snapshot_date + interval 30 day
        ) as licenses_expiring_30d
    from snapshots as s
    inner join silver.licenses as l on l.company_id = s.company_id
    group by all
)

select
    s.company_id,
    s.snapshot_date,
    w.id as worker_id,
    coalesce(a.assignments, 0) > 0 as is_assigned,
    coalesce(l.valid_licenses, 0) as valid_licenses,
    coalesce(l.licenses_expiring_30d, 0) as licenses_expiring_30d,
    case when coalesce(a.assignments, 0) > 0 then 1 else 0 end as assigned_workers,
    case
        when coalesce(a.assignments, 0) > 0 and coalesce(l.valid_licenses, 0) > 0 then 1 else 0
    end as licensed_assigned_workers
from snapshots as s
inner join silver.profiles as w
    on w.company_id = s.company_id and (w.hired_on is null or w.hired_on <= s.snapshot_date)
left join assigned as a
    on a.company_id = s.company_id and a.snapshot_date = s.snapshot_date and a.worker_id = w.id
left join licensed as l
    on l.company_id = s.company_id and l.snapshot_date = s.snapshot_date and l.worker_id = w.id
