-- Issue 13B: the de-identification detectors widened to what staff and customers actually type.
-- (The role the gate reads as, gate, is 0100's; its login th_gate gets SELECT only from
-- tierhouse.privacy.access.apply.) Replaces the functions of 0005 (same names and signatures, so
-- the gate's queries are unchanged); tierhouse.privacy.free_text holds the same patterns for
-- checking staff free text at entry, and tests/test_free_text.py runs both on the same spellings.
--
-- New spellings found: a label glued to the number (tel13912345678, ID11010519491231002X,
-- 13912345678x), groups split by dots or slashes (139.1234.5678, 139/1234/5678), the first group
-- in brackets ((139)1234-5678), and their full-width forms (（）／：＃ are folded too).
--
-- Still not found, so that keys, hashes, uuids, amounts, dates and order ids stay quiet: a number
-- after a digit, after a single letter or a run of letters that are all hex digits (a-f: a keyed
-- hash's), or after a decimal point with a digit before it; a number followed by a digit, a hex letter or a decimal
-- fraction; dots or slashes used only once (1391234.5678 is an amount).

create or replace function audit.fold_width(value text) returns text
language sql immutable parallel safe
as $$
    select case when octet_length(value) = length(value) then value
                else translate(value, '０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ＋－＠．＿％　‐‑‒–—−（）／：＃', '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-@._% ------()/:#') end
$$;

-- The screen every finding passes (see 0005): now also the bracketed, dotted and slashed groups.
create or replace function audit.screen_pattern(ascii_names text) returns text
language sql immutable parallel safe
as $$ select '[^\x01-\x7f]|1[3-9][0-9]\)?(?:[- ./]?[0-9]{4}){2}|[0-9]{6}[- ]?[0-9]{8}|@[A-Za-z0-9.-]+\.[A-Za-z]' || coalesce('|' || ascii_names, '') $$;

-- Before the number: the start, a character that is no ASCII letter, digit or point, or a point
-- without a digit before it; then an optional label of two letters or more, at least one of
-- them no hex digit (tel, ID, mobile; a single letter is a key's prefix, as in M13812345678).
-- After it: an optional label of letters, at least one no hex digit (x, ext), then no letter,
-- digit or decimal fraction.
create or replace function audit.has_mobile(value text) returns boolean
language sql immutable parallel safe
as $$ select value ~ '(?:^|[^0-9A-Za-z.]|(?<![0-9])\.)(?:(?=[A-Za-z]{2})[A-Za-z]*[G-Zg-z][A-Za-z]*)?(?:\+?86|0086)?[- ]?(?:1[3-9][0-9]|\(1[3-9][0-9]\))(?:[- ]?[0-9]{4}[- ]?[0-9]{4}|\.[0-9]{4}\.[0-9]{4}|/[0-9]{4}/[0-9]{4})(?:[A-Za-z]*[G-Zg-z][A-Za-z]*)?(?![0-9A-Za-z])(?!\.[0-9])' $$;

create or replace function audit.has_resident_id(value text) returns boolean
language sql immutable strict parallel safe
as $$
    select exists (
        select 1 from regexp_matches(value, '(?:^|[^0-9A-Za-z.]|(?<![0-9])\.)(?:(?=[A-Za-z]{2})[A-Za-z]*[G-Zg-z][A-Za-z]*)?([0-9]{6})[- ]?([0-9]{8})[- ]?([0-9]{3}[0-9Xx])(?![0-9A-Za-z])(?!\.[0-9])', 'g') as m
        where audit.resident_id_checksum_holds(m[1] || m[2] || m[3])
    )
$$;
