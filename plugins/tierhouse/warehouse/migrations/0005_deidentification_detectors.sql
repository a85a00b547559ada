-- The de-identification gate's detectors (tierhouse.privacy.deidentification): SQL functions
-- that find a mainland mobile number, a resident ID number with a valid check character, an
-- e-mail address or a customer's name in a value. Single-expression SQL functions are inlined
-- into the gate's queries by the planner, costing nothing.
--
-- audit.fold_width maps full-width characters (what Chinese input methods type: ０-９, Ａ-Ｚ,
-- ａ-ｚ, ＋－＠．＿％, the ideographic space U+3000 and the dashes U+2010-2014 and U+2212) to
-- ASCII; the gate folds the names it looks for with the same table in Python, and
-- tests/test_migrations.py checks that the two agree.

create schema if not exists audit;

create or replace function audit.fold_width(value text) returns text
language sql immutable parallel safe
as $$
    select case when octet_length(value) = length(value) then value
                else translate(value, '０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ＋－＠．＿％　‐‑‒–—−', '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-@._% ------') end
$$;

-- The screen: one pattern that every finding implies, given the ASCII-only names to add to it.
-- Nearly every value (keys, codes, amounts) fails it quickly and every finding passes it: a
-- character beyond ASCII (Chinese names, full-width digits), a mobile or ID number without its
-- boundaries, an "@" before a domain. The exact patterns below, whose lookbehinds are slow, and
-- the names then see only the few values that pass.
create or replace function audit.screen_pattern(ascii_names text) returns text
language sql immutable parallel safe
as $$ select '[^\x01-\x7f]|1[3-9][0-9](?:[- ]?[0-9]{4}){2}|[0-9]{6}[- ]?[0-9]{8}|@[A-Za-z0-9.-]+\.[A-Za-z]' || coalesce('|' || ascii_names, '') $$;

-- A number must stand on its own: (?<![0-9A-Za-z])(?<![0-9]\.) before it and
-- (?![0-9A-Za-z])(?!\.[0-9]) after it keep out a number inside a word, a keyed hash or a
-- decimal fraction.
create or replace function audit.has_mobile(value text) returns boolean
language sql immutable parallel safe
as $$ select value ~ '(?<![0-9A-Za-z])(?<![0-9]\.)(?:\+?86|0086)?[- ]?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9A-Za-z])(?!\.[0-9])' $$;

create or replace function audit.has_email(value text) returns boolean
language sql immutable parallel safe
as $$ select value ~ '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}' $$;

-- ISO 7064 MOD 11-2: the weights of the first 17 digits and the check character of each remainder.
create or replace function audit.resident_id_checksum_holds(id text) returns boolean
language sql immutable strict parallel safe
as $$
    select substr('10X98765432',
                  sum(substr(id, position::integer, 1)::integer * weight)::integer % 11 + 1, 1)
           = upper(substr(id, 18, 1))
    from unnest(array[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]) with ordinality as w (weight, position)
$$;

-- The three groups of a match are joined before the check character is verified.
create or replace function audit.has_resident_id(value text) returns boolean
language sql immutable strict parallel safe
as $$
    select exists (
        select 1 from regexp_matches(value, '(?<![0-9A-Za-z])(?<![0-9]\.)([0-9]{6})[- ]?([0-9]{8})[- ]?([0-9]{3}[0-9Xx])(?![0-9A-Za-z])(?!\.[0-9])', 'g') as m
        where audit.resident_id_checksum_holds(m[1] || m[2] || m[3])
    )
$$;

-- A name with a character beyond ASCII (every Chinese name) can only be in a value that has one.
create or replace function audit.has_name(value text, ascii_names text, other_names text) returns boolean
language sql immutable parallel safe
as $$
    select coalesce(value ~ ascii_names, false)
        or coalesce(octet_length(value) > length(value) and value ~ other_names, false)
$$;
