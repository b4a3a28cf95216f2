# appserver — the local front proxy: nginx on port 80 routes each location (host + path prefix)
# to its application's active instance. The upstream of each app is a file that `silver update`
# rewrites on activation; this layer only creates it when missing (pointing nowhere yet).
# Input: SILVER_PACKAGES SILVER_APPS SILVER_NGINX_CONF (+ _MD5: rendered by silver from the locations)

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

# The server blocks (one per host name, a location per app) are rendered by silver.
ensure_known /etc/nginx/conf.d/silver.conf 644 root:root "$SILVER_NGINX_CONF_MD5" "$SILVER_NGINX_CONF"
_changed=$CHANGED
ensure_absent /etc/nginx/sites-enabled/default
[ "$CHANGED" = 1 ] && _changed=1

if [ "$_changed" = 1 ] && [ "$CHECK" != 1 ]; then
  nginx -t -q || { echo "nginx configuration does not validate" >&2; exit 1; }
fi
ensure_on nginx
[ "$_changed" = 1 ] && reload_unit nginx
true
