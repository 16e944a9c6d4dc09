#!/bin/sh
# SPDX-License-Identifier: MIT
# 719-preload-java: a Java program with EMM_PRELOAD_MMAP, the JVM's heap (reserved with an address hint, committed piece by piece) under a 64 MiB budget: the same output as without emm, pages written to swap, the budget held.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless java
skip_unless_programs javac

echo 1..5
# 300,000 strings in a HashMap, its entries sorted by value, a digest.
cat >"$tmp/H.java" <<'EOJ'
import java.util.*;
public class H {
	public static void main(String[] a) {
		int n = Integer.parseInt(a[0]);
		HashMap<String, String> m = new HashMap<>();
		for (int i = 0; i < n; i++)
			m.put("key" + i, ("v" + (i * 7919L)).repeat(3));
		List<Map.Entry<String, String>> l = new ArrayList<>(m.entrySet());
		l.sort(Map.Entry.comparingByValue());
		long h = 0;
		for (int i = 0; i < l.size(); i += 97)
			h = h * 31 + (l.get(i).getKey() + l.get(i).getValue()).hashCode();
		System.out.println(m.size() + " " + h);
	}
}
EOJ
javac -d "$tmp" "$tmp/H.java" && java -Xmx512m -cp "$tmp" H 300000 >"$tmp/plain"
tap $? "without emm: $(cat "$tmp/plain")"
EMM_PRELOAD_MMAP=1 under_emm 64M timeout -k 5 120 java -Xmx512m -cp "$tmp" H 300000
