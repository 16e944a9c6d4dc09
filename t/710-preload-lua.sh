#!/bin/sh
# SPDX-License-Identifier: MIT
# 710-preload-lua: an unmodified Lua interpreter under a 24 MiB budget: 200,000 strings built, sorted, concatenated (a 34 MB string) and written to a file and read back.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless lua5.4

cat >"$tmp/s.lua" <<'LUA'
collectgarbage("generational")
local n = 200000
local t = {}
for i = 1, n do
	-- keys out of order in runs of 16: the sort has work, with locality
	local k = i + 15 - 2 * ((i - 1) % 16)
	t[i] = string.format("%08d:", k) .. string.rep(string.char(65 + k % 26), 130 + k % 64)
end
table.sort(t)
local sorted = true
for i = 2, n do if t[i - 1] >= t[i] then sorted = false end end
local s = table.concat(t, "\n")
print("sorted", sorted, "strings", #t, "bytes", #s)
t = nil
local big = s:sub(1, 64 * 1024 * 1024)
local f = assert(io.open(arg[1], "wb"))
assert(f:write(big))
assert(f:close())
f = assert(io.open(arg[1], "rb"))
local back = f:read("a")
f:close()
print("wrote", #big, "read", #back, "same", back == big)
LUA

echo 1..5
lua5.4 "$tmp/s.lua" "$tmp/plain.out" >"$tmp/plain"
tap $? "without emm: $(head -c 60 "$tmp/plain" | tr '\t\n' '  ')"
under_emm 24M lua5.4 "$tmp/s.lua" "$tmp/emm.out"
