# nginx from Debian's packages in front of the compose profile "cluster" (nginx.conf).
# Build from this directory: docker build -f deploy/proxy.Dockerfile -t samverkan-proxy deploy
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/*
COPY nginx.conf /etc/nginx/nginx.conf
# Debian's www-data: no root needed, as nginx.conf listens on 8080 and writes only to /tmp.
USER www-data
EXPOSE 8080
# -e stderr: the startup log too, before nginx.conf is read (the default file is root's).
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
