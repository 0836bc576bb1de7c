"""Tools around the suite, not part of the runtime kernel: nothing in the services imports this
package, and the image leaves it out (Dockerfile). The local Kafka broker (`broker`, `flexchain broker`),
its TLS and SCRAM material (`pki`), the demo (`demo`, `flexchain demo`), the AsyncAPI document
(`asyncapi`, `flexchain asyncapi`), and the merchant simulator and its report (`flexchain simulate`),
which drive the suite from outside, through its public HTTP APIs and `clock.ticks`."""
