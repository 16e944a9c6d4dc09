#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the benchmarks at short sizes and chart their "data:" lines with
# gnuplot: PNGs, the data they show and each run's full output go to
# bench/results/. Sizes can be raised: BENCH_SIZE_FIRST_TOUCH,
# BENCH_SIZE_OOC, BENCH_LIMIT_OOC, BENCH_OPS_OOC, BENCH_SIZE_FILE,
# BENCH_LIMIT_FILE, BENCH_OPS_FILE, BENCH_SIZE_HEAP, BENCH_OPS_HEAP,
# BENCH_N_CLIENTS (the Lua script's strings), BENCH_LIMIT_CLIENTS (budgets,
# comma-separated). BENCH_PLOT_ONLY=1 charts the data.txt there again
# without running anything.
# Charted: first touch (emm per backend the build offers, and the kernel);
# out-of-core (emm per backend, the kernel's swap in a memory cgroup, the
# device through O_DIRECT); FILE VMAs (emm, the device, the kernel's mmap);
# the heap (glibc, mimalloc and libemm-heap unconstrained, then libemm-heap
# under a budget against mimalloc under the kernel's swap); the clients
# (Lua, the sqlite3 shell, Python and sort: unconstrained, under emm, under the kernel's
# swap, per budget). The kernel's swap needs root and a cgroup v1 memory
# controller; without them emm-bench says so and its bars are missing.
set -eu
cd "$(dirname "$0")/.."
bench=bench/emm-bench
out=bench/results
mkdir -p "$out"
start=$(date +%s) load0=$(cut -d ' ' -f 1-3 /proc/loadavg)
data=$out/data.txt
ooc_size=${BENCH_SIZE_OOC:-128M} ooc_limit=${BENCH_LIMIT_OOC:-32M}
file_size=${BENCH_SIZE_FILE:-256M} file_limit=${BENCH_LIMIT_FILE:-64M}
heap_size=${BENCH_SIZE_HEAP:-32M}
clients_n=${BENCH_N_CLIENTS:-50000} clients_limit=${BENCH_LIMIT_CLIENTS:-16M,10M}

# run NAME ARGS...: one emm-bench run, its output in $out/NAME.log; a
# failure is named in $failed, and the charts of the others are still made.
failed=
run() {
	name=$1
	shift
	echo "bench-plot: emm-bench $*" >&2
	"$bench" "$@" >"$out/$name.log" 2>&1 || {
		echo "bench-plot: emm-bench $* failed; see $out/$name.log" >&2
		failed="$failed $name"
	}
}

# Every mode's data lines into $data. First touch, out-of-core and file run
# every backend the machine offers and name each figure's subject after its
# backend (emm-signal, emm-uffd, ...).
measure() {
	: >"$data"
	run first-touch first-touch --size "${BENCH_SIZE_FIRST_TOUCH:-64M}" --runs 2
	run out-of-core out-of-core --size "$ooc_size" --limit "$ooc_limit" --ops "${BENCH_OPS_OOC:-4K}"
	run file file --size "$file_size" --limit "$file_limit" --ops "${BENCH_OPS_FILE:-8K}"
	run heap heap --size "$heap_size" --ops "${BENCH_OPS_HEAP:-256K}" --runs 1
	run clients clients --ops "$clients_n" --limit "$clients_limit"
	cat "$out/first-touch.log" "$out/out-of-core.log" "$out/file.log" "$out/heap.log" \
		"$out/clients.log" | grep '^data: ' >>"$data"
}

# table MODE UNIT [SUBJECT...]: rows of "pattern value-per-subject...", with
# a header of the subjects: those named first, in that order, then the others
# in the order they first appear. A run that failed (unit=failed) shows as 0.
table() {
	mode=$1 unit=$2
	shift 2
	awk -v mode="$mode" -v unit="$unit" -v first="$*" '
	function val(k,   i, n, kv) {
		for (i = 2; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) return substr($i, n + 1) }
	}
	BEGIN { nf = split(first, f, " "); for (i = 1; i <= nf; i++) rank[f[i]] = i }
	$1 == "data:" && val("mode") == mode && (val("unit") == unit || val("unit") == "failed") {
		p = val("pattern"); s = val("subject")
		if (!(p in pseen)) { pseen[p] = 1; pats[np++] = p }
		if (!(s in sseen)) { sseen[s] = 1; subs[ns++] = s }
		if (val("unit") == "failed") { if (!((p, s) in v)) v[p, s] = 0 } else v[p, s] = val("value")
	}
	END {
		# the subjects named first, in their order; a stable insertion sort
		for (i = 1; i < ns; i++)
			for (j = i; j > 0 && (subs[j] in rank) && (!(subs[j - 1] in rank) || rank[subs[j]] < rank[subs[j - 1]]); j--) {
				t = subs[j]; subs[j] = subs[j - 1]; subs[j - 1] = t
			}
	}
	END {
		printf "pattern"; for (j = 0; j < ns; j++) printf " %s", subs[j]; print ""
		for (i = 0; i < np; i++) {
			printf "%s", pats[i]
			for (j = 0; j < ns; j++) printf " %s", ((pats[i], subs[j]) in v) ? v[pats[i], subs[j]] : "NaN"
			print ""
		}
	}' "$data"
}

# chart FILE TITLE YLABEL TABLE: clustered bars, one cluster per pattern,
# one bar per subject, on a log scale (the patterns differ by orders of
# magnitude) from the power of ten below the smallest value, each bar
# labelled with its value (k, M); a run that failed (0) has no bar and the
# label "failed" at the foot of its place.
chart() {
	png=$1 title=$2 ylabel=$3 tab=$4
	cols=$(head -n 1 "$tab" | wc -w)
	ymin=$(awk 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "NaN" && $i > 0 && (m == "" || $i < m)) m = $i }
		END { p = 1; while (p * 10 <= m) p *= 10; print p }' "$tab")
	gnuplot <<-END
	set terminal pngcairo size 900,540 font "DejaVu Sans,11" noenhanced
	set output "$png"
	set title "$title"
	set ylabel "$ylabel"
	set logscale y
	set format y "%.0s%c"
	set grid ytics
	set key top right
	set style data histograms
	set style histogram clustered gap 1
	set style fill solid 0.85 border -1
	set boxwidth 0.9
	set yrange [$ymin:*]
	n = $cols - 1
	lab(x) = x == 0 ? "failed" : x < 1000 ? sprintf("%.0f", x) : x < 1e6 ? sprintf("%.1fk", x / 1e3) : sprintf("%.2fM", x / 1e6)
	at(x) = x == 0 ? $ymin * 1.3 : x
	plot for [c=2:$cols] "$tab" using (column(c) > 0 ? column(c) : NaN):xtic(1) title columnhead(c), \
	     for [c=2:$cols] "$tab" using (\$0 - 1 + (c - 2 - (n - 1) / 2.0) / (n + 1)):(at(column(c))):(lab(column(c))) \
		with labels offset 0,0.8 font ",9" notitle
	END
}

[ -n "${BENCH_PLOT_ONLY-}" ] || measure
table first-touch pages/s kernel >"$out/first-touch.dat"
chart "$out/first-touch.png" "First touch of ${BENCH_SIZE_FIRST_TOUCH:-64M}: one write per page, emm by backend and the kernel" \
	"pages/s (log scale)" "$out/first-touch.dat"
table out-of-core pages/s kernel-swap device >"$out/out-of-core.dat"
sed -i '1s/ device/ device-O_DIRECT/' "$out/out-of-core.dat"
chart "$out/out-of-core.png" "Out of core: a $ooc_size region under a $ooc_limit budget; emm, the kernel's swap, O_DIRECT" \
	"pages/s (log scale)" "$out/out-of-core.dat"
table file pages/s kernel-mmap device | sed '1s/ device/ device-pread/' >"$out/file.dat"
chart "$out/file.png" "FILE VMAs: a $file_size file under a $file_limit budget, emm against pread and the kernel's mmap" \
	"pages/s (log scale)" "$out/file.dat"
table heap ops/s glibc mimalloc mimalloc-kernel-swap >"$out/heap.dat"
chart "$out/heap.png" "Heap, 2 threads, about $heap_size live: unconstrained; under a budget of 1/4, emm vs the kernel's swap" \
	"allocations + frees per second (log scale)" "$out/heap.dat"
table clients ms unconstrained kernel-swap kernel+mimalloc >"$out/clients.dat"
chart "$out/clients.png" "Lua ($clients_n strings), sqlite3, Python and sort under budgets of $clients_limit: emm vs the kernel's swap (glibc, mimalloc)" \
	"wall time, ms (log scale; lower is better)" "$out/clients.dat"

[ -n "${BENCH_PLOT_ONLY-}" ] || {
	echo "Made by make bench-plot on $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "kernel: $(uname -srm)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPU(s)"
	echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "swap and files in: $(df -h "${TMPDIR:-/var/tmp}" | awk 'NR == 2 { print $1 " (" $6 ")" }')"
	echo "load average (1, 5, 15 min) at the start: $load0; at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
	echo "the run took $(($(date +%s) - start)) s"
} >"$out/MACHINE.txt"
echo "bench-plot: charts in $out: $(cd "$out" && ls ./*.png | tr '\n' ' ')" >&2
if [ -n "$failed" ]; then
	echo "bench-plot: these runs failed, their charts are incomplete:$failed" >&2
	exit 1
fi
