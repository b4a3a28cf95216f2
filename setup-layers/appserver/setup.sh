# appserver — the local front proxy: nginx on port 80 routes each location (host + path prefix)
# to its application's active instance. The upstream of each app is a file that `silver update`
# rewrites on activation; this layer only creates it when missing (pointing nowhere yet).
# Input: SILVER_PACKAGES SILVER_LOCATIONS (lines "HOST PATH APP") SILVER_APPS

ensure_pkgs $SILVER_PACKAGES
prestat /etc/silverlining/nginx /etc/nginx/conf.d/silver.conf /usr/local/lib/silverlining/bin/silver-deploy
ensure_dir /etc/silverlining/nginx 755 root:root

for app in $SILVER_APPS; do
  if [ ! -f "/etc/silverlining/nginx/upstream-$app.conf" ]; then
    ensure_file "/etc/silverlining/nginx/upstream-$app.conf" 644 root:root <<EOT
# written by silver update on activation; no instance of $app is active yet
upstream silver_app_$app {
	server 127.0.0.1:9 down;
}
EOT
  fi
done

_conf=$(mktemp)
{
  echo "# managed by silver: the front proxy of this app server"
  echo "include /etc/silverlining/nginx/upstream-*.conf;"
  cat <<'EOT'
map $http_x_forwarded_proto $silver_proto {
	default $http_x_forwarded_proto;
	""      $scheme;
}
server {
	listen 80 default_server;
	server_name _;
	location = /.silver/health { access_log off; default_type text/plain; return 200 "ok\n"; }
	location / { default_type text/plain; return 404 "no application here\n"; }
}
EOT
  for host in $(printf '%s\n' "$SILVER_LOCATIONS" | awk 'NF == 3 { print $1 }' | sort -u); do
    echo "server {"
    echo "	listen 80;"
    echo "	server_name $host;"
    printf '\tlocation = /.silver/health { access_log off; default_type text/plain; return 200 "ok\\n"; }\n'
    printf '%s\n' "$SILVER_LOCATIONS" | awk -v h="$host" 'NF == 3 && $1 == h { print $2, $3 }' | while read -r path app; do
      cat <<EOT
	location $path {
		proxy_pass http://silver_app_$app;
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_set_header Host \$host;
		proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
		proxy_set_header X-Forwarded-Proto \$silver_proto;
		proxy_set_header X-Forwarded-Prefix $path;
		proxy_next_upstream error timeout http_502;
	}
EOT
    done
    echo "}"
  done
} > "$_conf"
ensure_file /etc/nginx/conf.d/silver.conf 644 root:root < "$_conf"
_changed=$CHANGED
rm -f "$_conf"
ensure_absent /etc/nginx/sites-enabled/default
[ "$CHANGED" = 1 ] && _changed=1

if [ "$_changed" = 1 ] && [ "$CHECK" != 1 ]; then
  nginx -t -q || { echo "nginx configuration does not validate" >&2; exit 1; }
fi
ensure_on nginx
[ "$_changed" = 1 ] && reload_unit nginx
true
