#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the benchmarks at short sizes and chart their "data:" lines with
# gnuplot: PNGs, the data they show and each run's full output go to
# bench/results/. Sizes can be raised: BENCH_SIZE_FIRST_TOUCH,
# BENCH_SIZE_OOC, BENCH_LIMIT_OOC, BENCH_OPS_OOC, BENCH_SIZE_FILE,
# BENCH_LIMIT_FILE, BENCH_OPS_FILE.
# Charted: first touch (emm per backend the build offers, and the kernel),
# out-of-core and FILE VMAs (emm, the device through O_DIRECT, the kernel's
# mmap). emm-bench has no heap mode and no baseline of the kernel's own swap
# yet; their charts belong here when it does.
set -eu
cd "$(dirname "$0")/.."
bench=bench/emm-bench
out=bench/results
mkdir -p "$out"
data=$out/data.txt
: >"$data"

# run NAME ARGS...: one emm-bench run; its output in $out/NAME.log, its
# data lines (with NAME's subject relabelled by the caller) in $data.
run() {
	name=$1
	shift
	echo "bench-plot: emm-bench $*" >&2
	"$bench" "$@" >"$out/$name.log" 2>&1 || {
		echo "bench-plot: emm-bench $* failed; see $out/$name.log" >&2
		return 1
	}
}

# First touch: emm-bench runs every backend the machine offers and names
# each figure's subject after its backend (emm-signal, emm-uffd, ...).
run first-touch first-touch --size "${BENCH_SIZE_FIRST_TOUCH:-64M}" --runs 2 &&
	grep '^data: ' "$out/first-touch.log" >>"$data"
ooc_size=${BENCH_SIZE_OOC:-256M} ooc_limit=${BENCH_LIMIT_OOC:-64M}
file_size=${BENCH_SIZE_FILE:-256M} file_limit=${BENCH_LIMIT_FILE:-64M}
run out-of-core out-of-core --size "$ooc_size" --limit "$ooc_limit" --ops "${BENCH_OPS_OOC:-8K}"
grep '^data: ' "$out/out-of-core.log" >>"$data"
run file file --size "$file_size" --limit "$file_limit" --ops "${BENCH_OPS_FILE:-8K}"
grep '^data: ' "$out/file.log" >>"$data"

# table MODE PATTERN-FILTER: rows of "pattern value-per-subject...", with a
# header of the subjects in the order they first appear.
table() {
	awk -v mode="$1" -v unit="$2" '
	function val(k,   i, n, kv) {
		for (i = 2; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) return substr($i, n + 1) }
	}
	$1 == "data:" && val("mode") == mode && val("unit") == unit {
		p = val("pattern"); s = val("subject")
		if (!(p in pseen)) { pseen[p] = 1; pats[np++] = p }
		if (!(s in sseen)) { sseen[s] = 1; subs[ns++] = s }
		v[p, s] = val("value")
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
# labelled with its value.
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
	plot for [c=2:$cols] "$tab" using c:xtic(1) title columnhead(c), \
	     for [c=2:$cols] "$tab" using (\$0 - 1 + (c - 2 - (n - 1) / 2.0) / (n + 1)):c:(sprintf("%.0f", column(c))) \
		with labels offset 0,0.8 font ",9" notitle
	END
}

table first-touch pages/s >"$out/first-touch.dat"
chart "$out/first-touch.png" "First touch of ${BENCH_SIZE_FIRST_TOUCH:-64M}: one write per page, emm by backend and the kernel" \
	"pages/s (log scale)" "$out/first-touch.dat"
table out-of-core pages/s >"$out/out-of-core.dat"
sed -i '1s/ device/ device-O_DIRECT/' "$out/out-of-core.dat"
chart "$out/out-of-core.png" "Out of core: a $ooc_size region under a $ooc_limit budget, emm against O_DIRECT on the device" \
	"pages/s (log scale)" "$out/out-of-core.dat"
table file pages/s | sed '1s/ device/ device-pread/' >"$out/file.dat"
chart "$out/file.png" "FILE VMAs: a $file_size file under a $file_limit budget, emm against pread and the kernel's mmap" \
	"pages/s (log scale)" "$out/file.dat"

{
	echo "Made by make bench-plot on $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "kernel: $(uname -srm)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPU(s)"
	echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "swap and files in: $(df -h "${TMPDIR:-/var/tmp}" | awk 'NR == 2 { print $1 " (" $6 ")" }')"
} >"$out/MACHINE.txt"
echo "bench-plot: charts in $out: $(cd "$out" && ls ./*.png | tr '\n' ' ')" >&2
