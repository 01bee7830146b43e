# Cairn's split deployment on Nomad (Let's Encrypt moved Boulder to Nomad): one group per role,
# several instances of each stateless one, all from the same image (deploy/docker/Dockerfile).
# The services find each other through Nomad's service discovery and talk gRPC over mutual
# TLS; the internal PKI (`cairn admin pki dev` for a test set-up) and the configuration come
# from Nomad variables under nomad/jobs/cairn, rendered into each task's secrets/ directory.
# PostgreSQL and Redis run outside this job; their URLs are variables too.
#
# Each role has its own configuration file (deploy/config/<role>.toml: its own [rpc.tls]),
# one variable item per role:
#   nomad var put nomad/jobs/cairn config_wfe=@wfe.toml config_ra=@ra.toml config_va=@va.toml \
#     config_ca=@ca.toml config_sa=@sa.toml config_nonce=@nonce.toml \
#     database_url=postgres://... redis_url=redis://...
#   nomad job run deploy/nomad/cairn.nomad.hcl

variable "image" {
  type        = string
  default     = "cairn:latest"
  description = "The Cairn image (deploy/docker/Dockerfile)."
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

job "cairn" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  # The ACME API: no keys, no database. Behind the load balancer.
  group "wfe" {
    count = 2

    network {
      port "acme" {
        static = 14000
      }
      port "metrics" {}
    }

    service {
      name     = "cairn-wfe"
      port     = "acme"
      provider = "nomad"
      tags     = ["cairn", "wfe"]
    }

    service {
      name     = "cairn-wfe-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "wfe" {
      driver = "docker"

      config {
        image = var.image
        args  = ["wfe", "serve", "--config", "${NOMAD_SECRETS_DIR}/wfe.toml"]
        ports = ["acme", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/wfe.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_wfe }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }

  # Registration authority: policy, orders, revocation.
  group "ra" {
    count = 2

    network {
      port "grpc" {}
      port "metrics" {}
    }

    service {
      name     = "cairn-ra"
      port     = "grpc"
      provider = "nomad"
      tags     = ["cairn", "ra"]
    }

    service {
      name     = "cairn-ra-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "ra" {
      driver = "docker"

      config {
        image = var.image
        args  = ["ra", "serve", "--config", "${NOMAD_SECRETS_DIR}/ra.toml"]
        ports = ["grpc", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/ra.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_ra }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }

  # Validation authority; remote perspectives run this group in other regions.
  group "va" {
    count = 3

    network {
      port "grpc" {}
      port "metrics" {}
    }

    service {
      name     = "cairn-va"
      port     = "grpc"
      provider = "nomad"
      tags     = ["cairn", "va"]
    }

    service {
      name     = "cairn-va-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "va" {
      driver = "docker"

      config {
        image = var.image
        args  = ["va", "serve", "--config", "${NOMAD_SECRETS_DIR}/va.toml"]
        ports = ["grpc", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/va.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_va }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }

  # The issuer: holds the CA's private keys, so it runs on the issuing hosts only.
  group "ca" {
    count = 1

    constraint {
      attribute = "${meta.cairn_issuer}"
      value     = "true"
    }

    network {
      port "grpc" {}
      port "metrics" {}
    }

    service {
      name     = "cairn-ca"
      port     = "grpc"
      provider = "nomad"
      tags     = ["cairn", "ca"]
    }

    service {
      name     = "cairn-ca-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "ca" {
      driver = "docker"

      config {
        image = var.image
        args  = ["ca", "serve", "--config", "${NOMAD_SECRETS_DIR}/ca.toml"]
        ports = ["grpc", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/ca.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_ca }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }

  # Storage authority: the only client of PostgreSQL.
  group "sa" {
    count = 2

    network {
      port "grpc" {}
      port "metrics" {}
    }

    service {
      name     = "cairn-sa"
      port     = "grpc"
      provider = "nomad"
      tags     = ["cairn", "sa"]
    }

    service {
      name     = "cairn-sa-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "sa" {
      driver = "docker"

      config {
        image = var.image
        args  = ["sa", "serve", "--config", "${NOMAD_SECRETS_DIR}/sa.toml"]
        ports = ["grpc", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/sa.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_sa }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }

  # Nonce service: nonces any WFE can redeem.
  group "nonce" {
    count = 2

    network {
      port "grpc" {}
      port "metrics" {}
    }

    service {
      name     = "cairn-nonce"
      port     = "grpc"
      provider = "nomad"
      tags     = ["cairn", "nonce"]
    }

    service {
      name     = "cairn-nonce-metrics"
      port     = "metrics"
      provider = "nomad"
      tags     = ["prometheus"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "nonce" {
      driver = "docker"

      config {
        image = var.image
        args  = ["nonce", "serve", "--config", "${NOMAD_SECRETS_DIR}/nonce.toml"]
        ports = ["grpc", "metrics"]
      }

      env {
        CAIRN_LOG_FORMAT = "json"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/nonce.toml"
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}{{ .config_nonce }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/cairn.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cairn" }}
          CAIRN_DATABASE_URL={{ .database_url }}
          CAIRN_REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
