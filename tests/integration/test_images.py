"""Manifests copied unchanged from the Kubernetes docs and from Kubernetes in Action run on the image catalog
(kemu/api/images.yaml): what users see — bytes served, names answered, restarts — on real labs."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

# kubernetes.io: pods/probe/exec-liveness.yaml (args only: busybox's default sh is not used, args are the command)
LIVENESS_EXEC = """
apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: liveness-exec
spec:
  containers:
  - name: liveness
    image: registry.k8s.io/busybox
    args:
    - /bin/sh
    - -c
    - touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      initialDelaySeconds: 5
      periodSeconds: 5
"""

# kubernetes.io: service/networking/run-my-nginx.yaml + nginx-svc.yaml ("Connecting Applications with Services")
MY_NGINX = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-nginx
spec:
  selector:
    matchLabels:
      run: my-nginx
  replicas: 2
  template:
    metadata:
      labels:
        run: my-nginx
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  labels:
    run: my-nginx
spec:
  ports:
  - port: 80
    protocol: TCP
  selector:
    run: my-nginx
"""

# kubernetes.io: a busybox pod to run commands from (the DNS debugging page's shape)
BUSYBOX = """
apiVersion: v1
kind: Pod
metadata:
  name: busybox
spec:
  containers:
  - name: busybox
    image: busybox:1.28
    command:
      - sleep
      - "3600"
  restartPolicy: Always
"""

NGINX_CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
data:
  index.html: |
    <h1>served from a configMap</h1>
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: site-conf
data:
  default.conf: |
    server {
        listen 8080;
        location / {
            root /usr/share/nginx/html;
        }
    }
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: nginx
    image: nginx:alpine
    ports:
    - containerPort: 8080
    volumeMounts:
    - name: site
      mountPath: /usr/share/nginx/html
    - name: conf
      mountPath: /etc/nginx/conf.d
  volumes:
  - name: site
    configMap:
      name: site
  - name: conf
    configMap:
      name: site-conf
"""

# Kubernetes in Action, chapter 4: kubia-rc.yaml; chapter 5: kubia-svc-nodeport.yaml
KUBIA_RC = """
apiVersion: v1
kind: ReplicationController
metadata:
  name: kubia
spec:
  replicas: 3
  selector:
    app: kubia
  template:
    metadata:
      labels:
        app: kubia
    spec:
      containers:
      - name: kubia
        image: luksa/kubia
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: kubia-nodeport
spec:
  type: NodePort
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30123
  selector:
    app: kubia
"""

# Kubernetes in Action, chapter 6: fortune-pod.yaml
FORTUNE = """
apiVersion: v1
kind: Pod
metadata:
  name: fortune
spec:
  containers:
  - image: luksa/fortune
    name: html-generator
    volumeMounts:
    - name: html
      mountPath: /var/htdocs
  - image: nginx:alpine
    name: web-server
    volumeMounts:
    - name: html
      mountPath: /usr/share/nginx/html
      readOnly: true
    ports:
    - containerPort: 80
      protocol: TCP
  volumes:
  - name: html
    emptyDir: {}
"""

# upstream e2e style: agnhost porter serving env values, and `/agnhost serve-hostname` as a command
PORTER = """
apiVersion: v1
kind: Pod
metadata:
  name: porter
spec:
  containers:
  - name: porter
    image: registry.k8s.io/e2e-test-images/agnhost:2.40
    args: ["porter"]
    env:
    - name: SERVE_PORT_80
      value: foo
    - name: SERVE_PORT_160
      value: bar
    ports:
    - containerPort: 80
    - containerPort: 160
  - name: hostname
    image: registry.k8s.io/e2e-test-images/agnhost:2.40
    command: ["/agnhost", "serve-hostname"]
    ports:
    - containerPort: 9376
"""


def _restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def test_busybox_liveness_exec_example_restarts_when_the_file_goes(kemu_lab):
    kemu_lab.apply(LIVENESS_EXEC)
    kemu_lab.wait_pod("liveness-exec", ready=True)
    # the args ran under busybox's image (no command): the file exists, probes pass, sh is the busybox applet
    assert kemu_lab.exec("liveness-exec", ["cat", "/tmp/healthy"], check=False) == ""
    assert "BusyBox" in kemu_lab.exec("liveness-exec", ["sh", "-c", "sh --help 2>&1 | head -1"], check=False)
    assert _restarts(kemu_lab.get("Pod", "liveness-exec")) == 0
    # 30 s later the file is gone; 3 failed probes 5 s apart restart the container
    kemu_lab.wait("liveness-exec to be restarted by its liveness probe",
                  lambda: _restarts(kemu_lab.get("Pod", "liveness-exec")) >= 1, timeout=90, interval=1)
    described = kemu_lab.kemu("describe", "pod", "liveness-exec").stdout
    assert "catalog entry busybox (built-in)" in described


def test_nginx_deployment_behind_a_service_welcomes_busybox_wget(kemu_lab):
    kemu_lab.apply(MY_NGINX + "---" + BUSYBOX)
    kemu_lab.wait_pod("busybox", ready=True)
    kemu_lab.wait_endpoints("my-nginx", 2, timeout=60)
    # busybox's own wget (the applet, not the host's) through cluster DNS and the Service
    wget = kemu_lab.exec("busybox", ["sh", "-c", "readlink $(command -v wget)"]).strip()
    assert wget.endswith("busybox"), wget
    body = kemu_lab.wait("nginx through the Service", lambda: "Welcome to nginx!" in (body := kemu_lab.exec(
        "busybox", ["wget", "-qO-", "http://my-nginx"], check=False)) and body, timeout=30, interval=0.5)
    assert "<title>Welcome to nginx!</title>" in body
    lookup = kemu_lab.exec("busybox", ["nslookup", "my-nginx.default.svc.cluster.local"], check=False)
    svc_ip = kemu_lab.get("Service", "my-nginx")["spec"]["clusterIP"]
    assert svc_ip in lookup, lookup
    # nginx runs in the foreground as the container's PID 1; its access log is the container's log
    name = kemu_lab.kemu("get", "pods", "-l", "run=my-nginx", "-o", "name").stdout.split()[0].split("/")[1]
    assert "nginx: master process nginx -g daemon off;" in kemu_lab.exec(name, ["cat", "/proc/1/cmdline"])
    ip = kemu_lab.get("Pod", name)["status"]["podIP"]
    assert "Welcome to nginx!" in kemu_lab.exec("busybox", ["wget", "-qO-", f"http://{ip}/"])
    kemu_lab.wait("the access log in kemu logs", lambda: '"GET / HTTP/1.1" 200' in kemu_lab.kemu("logs", name).stdout,
                  timeout=10, interval=0.5)


def test_nginx_serves_a_configmap_index_with_its_config_from_a_configmap(kemu_lab):
    kemu_lab.apply(NGINX_CONFIGMAP)
    pod = kemu_lab.wait_pod("web", ready=True)
    ip = pod["status"]["podIP"]
    body = kemu_lab.wait_http("web", f"http://{ip}:8080/", timeout=20)
    assert body == "<h1>served from a configMap</h1>\n"
    # the stock default.conf was replaced by the volume: nothing listens on 80 any more
    assert kemu_lab.http("web", f"http://{ip}:80/", timeout=1) == ""
    # the host's own nginx files are untouched by the container's layer
    with open("/etc/nginx/nginx.conf") as f:
        assert "kemu's nginx image" not in f.read()


def test_kubia_rc_scaled_3_to_5_answers_from_the_lab_client_through_a_nodeport(kemu_lab):
    kemu_lab.apply(KUBIA_RC)
    kemu_lab.wait_endpoints("kubia-nodeport", 3, timeout=60)
    assert "3" in kemu_lab.kemu("get", "rc", "kubia").stdout.splitlines()[1].split()
    kemu_lab.kemu("scale", "rc", "kubia", "--replicas=5")
    kemu_lab.wait_endpoints("kubia-nodeport", 5, timeout=60)
    pods = {n.split("/")[1] for n in kemu_lab.kemu("get", "pods", "-l", "app=kubia", "-o", "name").stdout.split()}
    assert len(pods) == 5
    seen = set()
    for _ in range(40):
        body = kemu_lab.http("client", "http://192.168.56.11:30123/", from_host=True)
        assert body.startswith("You've hit ") and body.endswith("\n"), body
        seen.add(body.removeprefix("You've hit ").strip())
        if len(seen) >= 3:
            break
    assert seen <= pods and len(seen) >= 3, (seen, pods)


def test_fortune_and_nginx_share_an_emptydir(kemu_lab):
    kemu_lab.apply(FORTUNE)
    pod = kemu_lab.wait_pod("fortune", ready=True)
    ip = pod["status"]["podIP"]
    body = kemu_lab.wait_http("fortune", f"http://{ip}/", timeout=20)
    assert body.strip() and "Welcome to nginx" not in body
    logs = kemu_lab.kemu("logs", "fortune", "-c", "html-generator").stdout
    assert "Configured to generate new fortune every 10 seconds" in logs
    assert "Writing fortune to /var/htdocs/index.html" in logs


def test_agnhost_porter_and_serve_hostname(kemu_lab):
    kemu_lab.apply(PORTER)
    pod = kemu_lab.wait_pod("porter", ready=True)
    ip = pod["status"]["podIP"]
    assert kemu_lab.wait_http("porter", f"http://{ip}:80/") == "foo"
    assert kemu_lab.wait_http("porter", f"http://{ip}:160/anything") == "bar"
    assert kemu_lab.wait_http("porter", f"http://{ip}:9376/") == "porter"
