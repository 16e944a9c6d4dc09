#!/bin/sh
# SPDX-License-Identifier: MIT
# 711-preload-sqlite: the unmodified sqlite3 shell builds a 50 MB table and its index under a 16 MiB budget with a 200 MB page cache.
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

echo 1..5
sqlite3 "$tmp/plain.db" <"$tmp/build.sql" >"$tmp/plain"
tap $? "without emm: $(tr '\n' ' ' <"$tmp/plain" | head -c 70)"
under_emm 16M sqlite3 "$tmp/emm.db" <"$tmp/build.sql"
