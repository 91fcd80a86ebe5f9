"""Deterministic demo data for a multi-tenant workforce-compliance platform.

Models the "Angelis" domain: companies are tenants; the workforce-management service
(namespace ``wfm``) owns companies, worker profiles, projects (faenas), assignments and
licenses; two external labs, SaferApp (MSSQL) and Fit2000 (MySQL), report drug, alcohol and
fitness tests into ``labs.test_results``. Workers are identified by Chilean RUT.

``generate`` is a pure, lazy function of ``(seed, scale, now)``: no I/O, no wall clock. It
deliberately carries a small deterministic share (~2%) of the dirt real platforms produce --
malformed contacts, missing RUTs, re-emitted updates, soft-deletes, inverted license dates
and a few ``"N/A"`` lab values -- so quarantine, dedup and soft-delete handling downstream
have something to do. No dirt lands in the first two rows of a table per tenant, because
the ingest SDK learns a table's shape from its first rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["DemoRecord", "DemoTenant", "generate", "plan_tenants"]

_DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
_BASE_TENANTS = 12
_MAX_TENANTS = 40
_CLEAN_PREFIX = 2  # rows per (tenant, table) that are always clean; the SDK infers from them
_ROW_DIRT = 0.02  # in-row defects on profiles
_LICENSE_DIRT = 0.01
_TEST_MISSING_RUT = 0.004
_TEST_NA = 0.0003  # "a handful" of type conflicts at scale 1
_REEMIT = 0.012  # duplicated updates and soft-deletes, emitted after the tenant's main stream
_COMPANY_UPDATE = 0.25

Record = dict[str, object]


@dataclass(frozen=True, slots=True)
class DemoRecord:
    namespace: str
    source_service: str
    table: str
    tenant: str
    record: dict[str, object]


@dataclass(frozen=True, slots=True)
class DemoTenant:
    tenant: str
    name: str
    workers: int


# Tenant slugs are the accent-folded, lowercased first words: "Biobío Energía" -> biobio-energia.
_PREFIXES = (
    "Andes", "Atacama", "Pacífico", "Austral", "Cordillera", "Litoral", "Maule", "Biobío", "Loa",
    "Elqui", "Aconcagua", "Tarapacá", "Magallanes", "Araucanía", "Copiapó", "Huasco", "Choapa",
    "Limarí", "Cachapoal", "Calama",
)  # fmt: skip
_SUFFIXES = (  # (display, industry)
    ("Mining", "mining"), ("Construcciones", "construction"), ("Energía", "energy"),
    ("Logística", "logistics"), ("Servicios Industriales", "industrial_services"),
    ("Ingeniería", "engineering"), ("Montajes", "construction"), ("Transportes", "logistics"),
)  # fmt: skip
_LEGAL = ("SpA", "S.A.", "Ltda.")
_REGIONS = (
    "Antofagasta", "Atacama", "Coquimbo", "Valparaíso", "Metropolitana", "O'Higgins", "Maule",
    "Biobío", "Tarapacá", "Magallanes",
)  # fmt: skip
_PLACES = (
    "Chuquicamata", "Escondida", "El Teniente", "Los Pelambres", "Collahuasi", "Sierra Gorda",
    "Candelaria", "Spence", "Centinela", "Andina", "Quebrada Blanca", "Mantos Blancos",
    "Zaldívar", "El Abra", "Caserones", "Salar de Atacama", "Mejillones", "Ventanas",
)  # fmt: skip
_SECTORS = ("Norte", "Sur", "Rajo", "Planta", "Tranque", "Puerto", "Mina", "Campamento")
_FIRST = (
    "Juan", "José", "Luis", "Carlos", "Jorge", "Manuel", "Pedro", "Francisco", "Diego", "Cristián",
    "Sebastián", "Matías", "Rodrigo", "Felipe", "Claudio", "Patricio", "María", "Carolina",
    "Daniela", "Camila", "Javiera", "Valentina", "Francisca", "Constanza", "Paula", "Fernanda",
    "Andrea", "Catalina",
)  # fmt: skip
_LAST = (
    "González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez",
    "Sepúlveda", "Morales", "Rodríguez", "López", "Fuentes", "Hernández", "Torres", "Araya",
    "Flores", "Espinoza", "Valenzuela", "Castillo", "Tapia", "Reyes", "Gutiérrez", "Castro",
    "Pizarro", "Álvarez", "Vásquez", "Sánchez", "Fernández",
)  # fmt: skip
_ROLES = (
    "operator", "driver", "supervisor", "mechanic", "electrician", "welder", "rigger",
    "safety_officer", "technician", "geologist",
)  # fmt: skip
_SHIFTS = ("day", "night", "4x4", "7x7", "10x10")
_LICENSES = (  # (type, validity in years)
    ("driver_a2", 4), ("driver_a4", 4), ("driver_b", 6), ("driver_d", 4),
    ("internal_mine_driving", 2), ("forklift_operator", 3), ("crane_operator", 2),
    ("work_at_height", 2), ("confined_space", 2), ("first_aid", 3), ("explosives_handler", 1),
)  # fmt: skip
_STATIONS = {
    "saferapp": ("SAF-ANF-01", "SAF-ANF-02", "SAF-CAL-01", "SAF-CPO-01", "SAF-SCL-01"),
    "fit2000": ("F2K-101", "F2K-102", "F2K-205", "F2K-310"),
}
_TEST_TYPES = {"saferapp": ("drug_screen", "alcohol_breath"), "fit2000": ("fitness_for_duty",)}
_ID_PREFIX = {"saferapp": "sa", "fit2000": "f2k"}
_PLANS = ("starter", "pro", "enterprise")
_FOLD = str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN")
_REEMIT_KINDS = {  # updates twice as likely as soft-deletes
    t: (f"{t}.update", f"{t}.update", f"{t}.delete")
    for t in ("profiles", "projects", "licenses", "assignments", "test_results")
}
# Each is forced at its first eligible chance so even scale=0.01 shows every case.
_FORCED = frozenset(
    {"bad_email", "bad_phone", "missing_rut", "license_inverted", "expired"}
    | {"expiring", "test_missing_rut", "test_na", "saferapp", "fit2000"}
    | {k for t in ("profiles", "licenses", "assignments", "test_results") for k in _REEMIT_KINDS[t]}
)


def plan_tenants(seed: int = 7, scale: float = 1.0) -> list[DemoTenant]:
    """The tenants ``generate`` emits: heavy-tailed sizes, ids stable across scales."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    rng = random.Random(f"strata-demo:{seed}:plan")  # noqa: S311 - reproducible, not secret
    # Draw every slot regardless of scale, so growing scale only appends tenants.
    # Prefixes repeat only past 20 tenants, and then with a different suffix.
    prefixes = rng.sample(range(len(_PREFIXES)), len(_PREFIXES)) * 2
    suffixes = [rng.randrange(len(_SUFFIXES)) for _ in _PREFIXES]
    suffixes += [(s + rng.randrange(1, len(_SUFFIXES))) % len(_SUFFIXES) for s in suffixes]
    legal = [rng.choice(_LEGAL) for _ in range(_MAX_TENANTS)]
    sizes = [rng.uniform(3600, 4400)] + [rng.uniform(200, 700) for _ in range(3)]
    sizes += [10 * 10 ** rng.random() for _ in range(_BASE_TENANTS - 4)]  # 10..100
    sizes += [10 * 70 ** rng.random() for _ in range(_MAX_TENANTS - _BASE_TENANTS)]  # 10..700
    head = sizes[:_BASE_TENANTS]
    rng.shuffle(head)  # the big tenant should not always come first
    sizes[:_BASE_TENANTS] = head
    count = _BASE_TENANTS + (round(4 * math.log2(scale)) if scale > 1 else 0)
    plans = []
    for i in range(min(count, _MAX_TENANTS)):
        prefix, (suffix, _) = _PREFIXES[prefixes[i]], _SUFFIXES[suffixes[i]]
        slug = f"{_slug(prefix)}-{_slug(suffix)}"
        name = f"{prefix} {suffix} {legal[i]}"
        plans.append(DemoTenant(slug, name, max(1, round(sizes[i] * scale))))
    return plans


def generate(
    seed: int = 7, scale: float = 1.0, *, now: datetime | None = None
) -> Iterator[DemoRecord]:
    """Yield every demo record: all companies first, then each tenant's data in turn."""
    if now is None:
        now = _DEFAULT_NOW
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    tenants = plan_tenants(seed, scale)  # validates scale eagerly, before the first next()
    return _stream(seed, tenants, now.astimezone(UTC))


def _stream(seed: int, tenants: list[DemoTenant], now: datetime) -> Iterator[DemoRecord]:
    # Spans tenants: the forced kinds still pending, and the labs' id sequences.
    pending, lab_seq = set(_FORCED), {"saferapp": 1_200_000, "fit2000": 300_000}
    gens = [_TenantGen(seed, t, now, pending, lab_seq) for t in tenants]
    for g in gens:
        yield g.company()
    gens.reverse()
    while gens:  # pop, so a finished tenant's bookkeeping can be freed
        yield from gens.pop().body()


def _slug(words: str) -> str:
    return words.split()[0].translate(_FOLD).lower()


def _rut_check_digit(number: int) -> str:
    """Chilean RUT verifier digit (modulo 11 with weights 2..7)."""
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(str(number))))
    dv = 11 - total % 11
    return {10: "K", 11: "0"}.get(dv, str(dv))


def _rut(number: int) -> str:
    return f"{number:,}".replace(",", ".") + "-" + _rut_check_digit(number)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _between(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    span = max(0, int((hi - lo).total_seconds()))
    return lo + timedelta(seconds=rng.randrange(span + 1))


def _at(day: date, rng: random.Random) -> datetime:
    """A working-hours timestamp on ``day``, when a clerk would have typed the row in."""
    return datetime.combine(day, time(11, tzinfo=UTC)) + timedelta(minutes=rng.randrange(600))


class _TenantGen:
    def __init__(
        self, seed: int, plan: DemoTenant, now: datetime, pending: set[str], lab_seq: dict[str, int]
    ) -> None:
        self.t, self.plan, self.pending, self.lab_seq = plan.tenant, plan, pending, lab_seq
        # One stream per tenant, keyed by its id, so tenants draw independently.
        self.rng = random.Random(f"strata-demo:{seed}:{plan.tenant}")  # noqa: S311
        self.latest = now - timedelta(hours=2)  # nothing is stamped in the last two hours
        self.today = now.date()
        self.founded = now - timedelta(seconds=self.rng.randrange(1000 * 86400, 2000 * 86400))
        self.seen: dict[str, int] = {}
        self.later: list[tuple[datetime, DemoRecord]] = []
        self.ruts: set[int] = set()
        self.supervisors: list[str] = []
        self.project_ids: list[str] = []
        self.project_cw: list[float] = []
        self.saferapp_share = self.rng.choice((0.15, 0.5, 0.85))
        self.domain = plan.tenant.replace("-", "") + ".cl"
        self.industry = next(i for s, i in _SUFFIXES if self.t.endswith("-" + _slug(s)))

    def _eligible(self, table: str) -> bool:
        n = self.seen.get(table, 0)
        self.seen[table] = n + 1
        return n >= _CLEAN_PREFIX

    def _forced(self, *kinds: str) -> str | None:
        """The first of ``kinds`` not produced yet anywhere, consuming it."""
        kind = next((k for k in kinds if k in self.pending), None)
        self.pending.discard(kind or "")
        return kind

    def _defect(self, kinds: Sequence[str], rate: float, eligible: bool) -> str | None:
        if not eligible:
            return None
        forced = self._forced(*kinds)
        return forced or (self.rng.choice(kinds) if self.rng.random() < rate else None)

    def _emit(self, table: str, rec: Record, eligible: bool, service: str = "") -> DemoRecord:
        ns = "labs" if service else "wfm"
        out = DemoRecord(ns, service or "wfm-service", table, self.t, rec)
        kind = self._defect(_REEMIT_KINDS[table], _REEMIT, eligible)
        if kind is not None:
            self._reemit(out, kind.endswith(".delete"))
        return out

    def _reemit(self, original: DemoRecord, delete: bool) -> None:
        rec = dict(original.record)
        prev = rec["updated_at"]
        if not isinstance(prev, datetime):
            raise TypeError(f"updated_at must be a datetime, got {prev!r}")
        hi = min(self.latest, prev + timedelta(days=90))
        stamp = _between(self.rng, prev + timedelta(minutes=1), hi)
        rec["updated_at"] = stamp
        if delete:
            rec["deleted_at"] = stamp
        else:
            _mutate(original.table, rec, stamp)
        self.later.append((stamp, dataclasses.replace(original, record=rec)))

    def _base(self, rid: str, created: datetime) -> Record:
        created = min(created, self.latest)
        base: Record = {"id": rid, "company_id": self.t, "created_at": created}
        base.update(updated_at=created, deleted_at=None)
        return base

    def company(self) -> DemoRecord:
        rng, size = self.rng, self.plan.workers
        rec = self._base(self.t, self.founded)
        rec.update(
            name=self.plan.name,
            rut=_rut(rng.randint(76_000_000, 77_999_999)),
            industry=self.industry,
            region=rng.choice(_REGIONS),
            plan="enterprise" if size >= 1000 else "pro" if size >= 150 else "starter",
            contracted_seats=size + rng.randint(0, size // 5 + 5),
            is_active=True,
        )
        if rng.random() < _COMPANY_UPDATE:
            self._reemit(DemoRecord("wfm", "wfm-service", "companies", self.t, rec), False)
        return DemoRecord("wfm", "wfm-service", "companies", self.t, rec)

    def body(self) -> Iterator[DemoRecord]:
        yield from self._projects()
        for i in range(self.plan.workers):
            yield from self._worker(i)
        self.later.sort(key=lambda pair: pair[0])
        for _, rec in self.later:
            yield rec

    def _projects(self) -> Iterator[DemoRecord]:
        rng = self.rng
        count = 1 + round(1.2 * math.sqrt(self.plan.workers))
        for k in range(count):
            start = _between(rng, self.founded, self.latest - timedelta(days=30))
            status = rng.choices(("active", "closed", "planned"), (7, 2, 1))[0]
            status = "active" if k == 0 else status  # every tenant has somewhere to work
            end = None
            if status == "closed":
                end = min(start + timedelta(days=rng.randint(60, 900)), self.latest).date()
            rec = self._base(_uuid(rng), start - timedelta(days=rng.randint(1, 20)))
            rec.update(
                code=f"FAE-{k + 1:04d}",
                name=f"Faena {rng.choice(_PLACES)} {rng.choice(_SECTORS)}",
                region=rng.choice(_REGIONS),
                status=status,
                start_date=start.date(),
                end_date=end,
            )
            self.project_ids.append(str(rec["id"]))
            yield self._emit("projects", rec, self._eligible("projects"))
        # Zipf-like staffing: a few faenas hold most of the workforce.
        self.project_cw = list(itertools.accumulate(1 / (k + 1) for k in range(count)))

    def _worker(self, i: int) -> Iterator[DemoRecord]:
        rng = self.rng
        pid = _uuid(rng)
        hired = _between(rng, self.founded + timedelta(days=7), self.latest - timedelta(days=3))
        number = rng.randint(6_000_000, 26_999_999)
        while number in self.ruts:
            number += 1
        self.ruts.add(number)
        rut = _rut(number)
        first, last, last2 = rng.choice(_FIRST), rng.choice(_LAST), rng.choice(_LAST)
        local = f"{first}.{last}".translate(_FOLD).lower().replace(" ", "")
        domain = self.domain if rng.random() < 0.6 else rng.choice(("gmail.com", "hotmail.com"))
        email = f"{local}{rng.randint(1, 99)}@{domain}"
        phone: str | None = f"+56 9 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        phone = None if rng.random() < 0.1 else phone  # optional field: not dirt
        eligible = self._eligible("profiles")
        defect = self._defect(("bad_email", "bad_phone", "missing_rut"), _ROW_DIRT, eligible)
        if defect == "bad_email":
            at_less, no_tld = email.replace("@", ""), email.rsplit(".", 1)[0]
            email = rng.choice((email.replace("@", "@@"), at_less, no_tld, " " + email))
        elif defect == "bad_phone":
            short = f"+56 9 {rng.randint(100, 999)} {rng.randint(10, 99)}"
            phone = rng.choice(("sin fono", "000000000", f"9{rng.randint(1000, 9999)}", short))
        rec = self._base(pid, hired)
        rec.update(
            rut=None if defect == "missing_rut" else rut,
            first_name=first,
            last_name=f"{last} {last2}",
            email=email,
            phone=phone,
            birth_date=(hired - timedelta(days=rng.randint(19 * 365, 62 * 365))).date(),
            job_title=rng.choice(_ROLES),
            hired_on=hired.date(),
            reporting_head_id=rng.choice(self.supervisors) if self.supervisors else None,
            status="active" if rng.random() < 0.92 else "inactive",
        )
        if len(self.supervisors) < max(1, self.plan.workers // 20):
            self.supervisors.append(pid)
        yield self._emit("profiles", rec, eligible)
        yield from self._licenses(pid, hired, minimum=int(i == 0))  # no tenant without licenses
        projects = yield from self._assignments(pid, hired)
        yield from self._tests(rut, hired, projects)

    def _licenses(self, pid: str, hired: datetime, minimum: int) -> Iterator[DemoRecord]:
        rng = self.rng
        for _ in range(max(minimum, rng.choices((0, 1, 2, 3), (10, 40, 35, 15))[0])):
            kind, years = rng.choice(_LICENSES)
            state = self._forced("expiring", "expired")
            state = state or rng.choices(("valid", "expiring", "expired"), (80, 7, 13))[0]
            lo, hi = {"valid": (31, years * 365), "expiring": (1, 30)}.get(state, (-400, -1))
            expires = self.today + timedelta(days=rng.randint(lo, hi))
            issued = expires - timedelta(days=years * 365)
            eligible = self._eligible("licenses")
            if self._defect(("license_inverted",), _LICENSE_DIRT, eligible):
                issued, expires = expires, expires - timedelta(days=rng.randint(1, 30))
            rec = self._base(_uuid(rng), max(hired, _at(issued, rng)))
            rec.update(
                profile_id=pid,
                license_type=kind,
                license_number=str(rng.randint(100_000, 9_999_999)),
                issued_on=issued,
                expires_on=expires,
                verified=rng.random() < 0.7,
            )
            yield self._emit("licenses", rec, eligible)

    def _assignments(self, pid: str, hired: datetime) -> Generator[DemoRecord, None, list[str]]:
        rng = self.rng
        start, last_day = hired.date(), self.latest.date()
        n = rng.choices((1, 2, 3), (55, 35, 10))[0]
        projects: list[str] = []
        for k in range(n):
            ends = start + timedelta(days=rng.randint(20, 400))
            # The last assignment is usually ongoing; none may end in the future.
            end = None if ends >= last_day or (k == n - 1 and rng.random() < 0.8) else ends
            project = rng.choices(self.project_ids, cum_weights=self.project_cw)[0]
            projects.append(project)
            rec = self._base(_uuid(rng), max(hired, _at(start, rng)))
            rec.update(
                profile_id=pid,
                project_id=project,
                role=rng.choice(_ROLES),
                shift=rng.choice(_SHIFTS),
                start_date=start,
                end_date=end,
            )
            yield self._emit("assignments", rec, self._eligible("assignments"))
            if end is None:
                break
            start = end + timedelta(days=rng.randint(1, 30))
            if start >= last_day:
                break
        return projects

    def _tests(self, rut: str, hired: datetime, projects: list[str]) -> Iterator[DemoRecord]:
        rng = self.rng
        last = self.latest - timedelta(hours=6)
        count = 1 + round((last - hired).days / 60 * rng.uniform(0.5, 1.5))
        # A pre-employment test, then random and periodic ones over the worker's tenure.
        times = [hired - timedelta(days=rng.randint(1, 10), minutes=rng.randrange(600))]
        times += sorted(_between(rng, hired, last) for _ in range(min(count, 40)))
        for tested_at in times:
            lab = self._forced("saferapp", "fit2000")
            lab = lab or ("saferapp" if rng.random() < self.saferapp_share else "fit2000")
            test_type = rng.choice(_TEST_TYPES[lab])
            result, value, unit = _measure(rng, test_type)
            eligible = self._eligible("test_results")
            missing = self._defect(("test_missing_rut",), _TEST_MISSING_RUT, eligible)
            # Only after the tenant's first clean rows, so a well-typed row always precedes it.
            result_value: float | str = value
            if self._defect(("test_na",), _TEST_NA, eligible):
                result, result_value = "inconclusive", "N/A"
            self.lab_seq[lab] += 1
            synced = tested_at + timedelta(minutes=rng.randint(5, 360))
            rec = self._base(f"{_ID_PREFIX[lab]}-{self.lab_seq[lab]}", synced)
            rec.update(
                lab=lab,
                lab_code=rng.choice(_STATIONS[lab]),
                worker_rut=None if missing else rut,
                project_id=rng.choice(projects),
                test_type=test_type,
                tested_at=tested_at,
                result=result,
                result_value=result_value,
                unit=unit,
            )
            yield self._emit("test_results", rec, eligible, f"{lab}-sync")


def _measure(rng: random.Random, test_type: str) -> tuple[str, float, str]:
    """A plausible reading and the lab's verdict on it."""
    if test_type == "drug_screen":  # THC metabolite, 50 ng/mL screening cut-off
        value = rng.uniform(50, 300) if rng.random() < 0.02 else rng.expovariate(1 / 6)
        verdict = "fail" if value >= 50 else "inconclusive" if value >= 40 else "pass"
        return verdict, round(value, 1), "ng/mL"
    if test_type == "alcohol_breath":  # zero tolerance on site
        value = rng.uniform(0.02, 1.5) if rng.random() < 0.03 else 0.0
        verdict = "pass" if value == 0 else "inconclusive" if value < 0.1 else "fail"
        return verdict, round(value, 2), "g/L"
    value = min(100.0, max(0.0, rng.gauss(82, 9)))  # fitness-for-duty score
    verdict = "fail" if value < 60 else "inconclusive" if value < 65 else "pass"
    return verdict, round(value, 1), "score"


def _mutate(table: str, rec: Record, stamp: datetime) -> None:
    """The field a real follow-up update would change."""
    if table == "companies":
        rec["plan"] = _PLANS[(_PLANS.index(str(rec["plan"])) + 1) % len(_PLANS)]
    elif table == "profiles":
        rec["status"] = "inactive" if rec["status"] == "active" else "active"
    elif table == "projects":
        rec["status"] = "active" if rec["status"] == "closed" else "closed"
    elif table == "licenses":
        rec["verified"] = not rec["verified"]
    elif table == "assignments":
        end = rec["end_date"]
        rec["end_date"] = end + timedelta(days=30) if isinstance(end, date) else stamp.date()
    else:  # test_results: a confirmatory test overturns the screening verdict
        rec["result"] = "fail" if rec["result"] == "pass" else "pass"
