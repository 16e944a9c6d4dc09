#!/bin/sh
# SPDX-License-Identifier: MIT
# 711-preload-sqlite: the unmodified sqlite3 shell builds a 50 MB table and its index under a 16 MiB budget with a 200 MB page cache; on another backend than uffd the preload warns.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless sqlite3

cat >"$tmp/build.sql" <<'SQL'
PRAGMA cache_size = -200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250000)
INSERT INTO t SELECT i, printf('%08x-%d', (i * 2654435761) % 4294967296, i), printf('%0150d', i) FROM n;
CREATE INDEX t_k ON t(k);
PRAGMA integrity_check;
SELECT count(*), sum(length(v)), min(k), max(k) FROM t;
SELECT id, k FROM t ORDER BY k LIMIT 3 OFFSET 100000;
SQL

echo 1..7
sqlite3 "$tmp/plain.db" <"$tmp/build.sql" >"$tmp/plain"
tap $? "without emm: $(tr '\n' ' ' <"$tmp/plain" | head -c 70)"
under_emm 16M sqlite3 "$tmp/emm.db" <"$tmp/build.sql"

# On another backend the preload says at start that system calls on heap
# pages that are not resident fail; on uffd it says nothing.
EMM_BACKEND=signal LD_PRELOAD=$so sqlite3 :memory: 'select 1' >/dev/null 2>"$tmp/warn"
grep -q 'emm-preload: warning: with the signal backend, a system call' "$tmp/warn"
tap $? "EMM_BACKEND=signal: a warning on standard error that system calls may fail with EFAULT"
EMM_BACKEND=uffd LD_PRELOAD=$so sqlite3 :memory: 'select 1' >/dev/null 2>"$tmp/warn"
test ! -s "$tmp/warn"
tap $? "EMM_BACKEND=uffd: nothing on standard error"
