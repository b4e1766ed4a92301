#!/usr/bin/env bash
# Operating-system packages the reports need: a CJK font (Chinese charts and pages), an emoji
# font (emoji in names print as emoji, not boxes) and Pango
# (weasyprint's PDF rendering) with HarfBuzz's font subsetting. Optional: Chromium, in which the
# browser-width test renders the pages headless (without it that test is skipped), and a Java
# runtime, which PySpark needs (without one the Spark tests are skipped).
# Installs them with apt-get when run as root on Debian/Ubuntu;
# otherwise says exactly what is missing and how to get it (a missing optional one does not fail).
set -u
missing=()
optional=()
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
fc-list 2>/dev/null | grep -qi "Noto Color Emoji" || missing+=(fonts-noto-color-emoji)
ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so' || missing+=(libpango-1.0-0)
ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so' || missing+=(libpangoft2-1.0-0)
# weasyprint subsets fonts with it (future versions require it; it warns without it)
ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so' || missing+=(libharfbuzz-subset0)
command -v fc-list >/dev/null || missing+=(fontconfig)
command -v java >/dev/null || optional+=(default-jre-headless)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || optional+=(chromium)
((${#missing[@]} + ${#optional[@]})) || exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${missing[*]} ${optional[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" "${optional[@]}" >/dev/null
  exit $?
fi
if ((${#optional[@]})); then
  echo "system-deps: optional ${optional[*]} is missing: the browser-width or Spark tests are skipped" >&2
  echo "  (Debian/Ubuntu: sudo apt-get install ${optional[*]})." >&2
fi
((${#missing[@]})) || exit 0
echo "system-deps: missing ${missing[*]}." >&2
echo "  Install them with your package manager (Debian/Ubuntu: sudo apt-get install ${missing[*]};" >&2
echo "  conda: conda install -c conda-forge pango fonts-noto-cjk). Chinese text and PDFs need them." >&2
exit 1
