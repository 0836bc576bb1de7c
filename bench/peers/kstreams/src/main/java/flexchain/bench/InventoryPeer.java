package flexchain.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The inventory service's reservation job on Kafka Streams, for the benchmark (bench/peers/README.md).
 *
 * <p>Input: flexchain commands RegisterSku, ReceiveStock, ReserveStock (Avro in the Confluent framing:
 * magic byte 0, 4-byte schema id, body), keyed by sku. State: one entry per sku in a persistent (RocksDB)
 * key-value store with its changelog, cached: registered, received, reserved, the warehouse the stock is
 * in and the sku's event version. Output: StockReserved or ReservationRejected per ReserveStock, with flexchain's envelope and
 * schema ids, keyed by sku, header {@code type}. exactly_once_v2. The schemas and their ids come from the
 * bench's config file (generated from flexchain's Codec), so both sides write and read the same bytes.
 */
public final class InventoryPeer {

  static final String STORE = "stock";

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: InventoryPeer <config.json>");
      System.exit(2);
    }
    JsonNode cfg = new ObjectMapper().readTree(new File(args[0]));
    new Codec(cfg); // fails early on a bad config

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, cfg.get("group").asText());
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, cfg.get("bootstrap").asText());
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.STATE_DIR_CONFIG, cfg.get("state_dir").asText());
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, cfg.get("replication_factor").asInt());
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    JsonNode commit = cfg.get("commit_interval_ms");
    if (commit != null && !commit.isNull()) {
      props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commit.asLong());
    }

    StreamsBuilder builder = new StreamsBuilder();
    // caching on, as the DSL's stores have it: a sku's updates between two commits reach RocksDB and the
    // changelog once (the Processor API's default would write both on every command)
    builder.addStateStore(
        Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray())
            .withCachingEnabled());
    builder
        .stream(cfg.get("input").asText(), Consumed.with(Serdes.String(), Serdes.ByteArray()))
        .process(() -> new Reserve(new Codec(cfg)), STORE)
        .to(cfg.get("output").asText(), Produced.with(Serdes.String(), Serdes.ByteArray()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    AtomicBoolean failed = new AtomicBoolean(false);
    streams.setStateListener(
        (now, before) -> {
          System.out.println("state " + before + " -> " + now);
          System.out.flush();
          if (now == KafkaStreams.State.ERROR) {
            failed.set(true);
            stopped.countDown();
          } else if (now == KafkaStreams.State.NOT_RUNNING) {
            stopped.countDown();
          }
        });
    streams.setUncaughtExceptionHandler(
        e -> {
          e.printStackTrace();
          failed.set(true);
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(Duration.ofSeconds(20));
                  stopped.countDown();
                }));
    streams.start();
    stopped.await();
    streams.close(Duration.ofSeconds(20));
    System.exit(failed.get() ? 1 : 0);
  }

  /** One sku's state, as the store's value. */
  static final class Stock {
    boolean registered;
    long received;
    long reserved;
    long version;
    String warehouse = "";

    static Stock of(byte[] b) {
      Stock s = new Stock();
      if (b == null) {
        return s;
      }
      ByteBuffer buf = ByteBuffer.wrap(b);
      s.registered = buf.get() != 0;
      s.received = buf.getLong();
      s.reserved = buf.getLong();
      s.version = buf.getLong();
      s.warehouse = new String(b, buf.position(), buf.remaining(), StandardCharsets.UTF_8);
      return s;
    }

    byte[] bytes() {
      byte[] wh = warehouse.getBytes(StandardCharsets.UTF_8);
      ByteBuffer buf = ByteBuffer.allocate(25 + wh.length);
      buf.put((byte) (registered ? 1 : 0)).putLong(received).putLong(reserved).putLong(version).put(wh);
      return buf.array();
    }

    long available() {
      return received - reserved;
    }
  }

  /** The job: commands keyed by sku → per-sku stock → one answer per ReserveStock. */
  static final class Reserve implements Processor<String, byte[], String, byte[]> {
    private final Codec codec;
    private ProcessorContext<String, byte[]> ctx;
    private KeyValueStore<String, byte[]> store;

    Reserve(Codec codec) {
      this.codec = codec;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      ctx = context;
      store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> rec) {
      Codec.Type type = codec.typeOf(rec.value());
      if (type == null) {
        return; // not a command of this job
      }
      GenericRecord cmd = codec.decode(type, rec.value());
      String sku = cmd.get("sku").toString();
      Stock st = Stock.of(store.get(sku));
      switch (type.name) {
        case "RegisterSku" -> {
          if (!st.registered) {
            st.registered = true;
            store.put(sku, st.bytes());
          }
        }
        case "ReceiveStock" -> {
          long qty = (Long) cmd.get("qty");
          if (st.registered && qty > 0) {
            st.received += qty;
            st.warehouse = cmd.get("warehouse").toString();
            store.put(sku, st.bytes());
          }
        }
        case "ReserveStock" -> reserve(rec, cmd, sku, st);
        default -> {}
      }
    }

    private void reserve(Record<String, byte[]> rec, GenericRecord cmd, String sku, Stock st) {
      String order = cmd.get("order_id").toString();
      long qty = (Long) cmd.get("qty");
      long available = st.registered ? st.available() : 0;
      Codec.Type out;
      GenericRecord answer;
      if (!st.registered || qty <= 0 || qty > available) {
        out = codec.type("ReservationRejected");
        answer = new GenericData.Record(out.schema);
        answer.put("available", available);
        answer.put(
            "reason",
            !st.registered
                ? "unknown sku " + sku
                : qty <= 0 ? "qty must be positive" : "only " + available + " available, " + qty + " requested");
      } else {
        out = codec.type("StockReserved");
        answer = new GenericData.Record(out.schema);
        Schema allocSchema = out.schema.getField("allocations").schema();
        GenericData.Record alloc = new GenericData.Record(allocSchema.getElementType());
        alloc.put("warehouse", st.warehouse);
        alloc.put("qty", qty);
        answer.put("allocations", new GenericData.Array<>(allocSchema, List.of(alloc)));
        Object gift = cmd.get("gift_rule_id");
        answer.put("gift_rule_id", gift == null ? null : gift.toString());
        st.reserved += qty;
      }
      answer.put("sku", sku);
      answer.put("order_id", order);
      answer.put("qty", qty);
      st.version += 1;
      answer.put("envelope", codec.envelope((GenericRecord) cmd.get("envelope"), out.name, sku, st.version));
      if (st.registered) {
        store.put(sku, st.bytes());
      }
      RecordHeaders headers = new RecordHeaders();
      headers.add("type", out.typeHeader);
      ctx.forward(new Record<>(sku, codec.encode(out, answer), rec.timestamp(), headers));
    }
  }

  /** flexchain's wire format for the types of the job, with the schema ids the bench passed. */
  static final class Codec {
    static final class Type {
      final String name;
      final int id;
      final Schema schema;
      final GenericDatumReader<GenericRecord> reader;
      final GenericDatumWriter<GenericRecord> writer;
      final byte[] typeHeader;

      Type(String name, int id, Schema schema) {
        this.name = name;
        this.id = id;
        this.schema = schema;
        this.reader = new GenericDatumReader<>(schema);
        this.writer = new GenericDatumWriter<>(schema);
        this.typeHeader = name.getBytes(StandardCharsets.UTF_8);
      }
    }

    private final Map<Integer, Type> byId = new HashMap<>();
    private final Map<String, Type> byName = new HashMap<>();
    private final UUID namespace;
    private final String scope;
    private final String producer;
    private final Schema envelopeSchema;
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);

    Codec(JsonNode cfg) {
      for (Iterator<Map.Entry<String, JsonNode>> it = cfg.get("schemas").fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        Schema schema = new Schema.Parser().parse(e.getValue().get("schema").toString());
        Type t = new Type(e.getKey(), e.getValue().get("id").asInt(), schema);
        byId.put(t.id, t);
        byName.put(t.name, t);
      }
      namespace = UUID.fromString(cfg.get("id_namespace").asText());
      scope = cfg.get("id_scope").asText();
      producer = cfg.get("producer").asText();
      envelopeSchema = type("StockReserved").schema.getField("envelope").schema();
    }

    Type type(String name) {
      Type t = byName.get(name);
      if (t == null) {
        throw new IllegalStateException("no schema for " + name + " in the config");
      }
      return t;
    }

    /** The command type of a record in the wire format, or null (another type, not the format). */
    Type typeOf(byte[] v) {
      if (v == null || v.length < 5 || v[0] != 0) {
        return null;
      }
      Type t = byId.get(ByteBuffer.wrap(v, 1, 4).getInt());
      return t == null || !(t.name.equals("RegisterSku") || t.name.equals("ReceiveStock") || t.name.equals("ReserveStock"))
          ? null
          : t;
    }

    GenericRecord decode(Type t, byte[] v) {
      decoder = DecoderFactory.get().binaryDecoder(v, 5, v.length - 5, decoder);
      try {
        return t.reader.read(null, decoder);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    byte[] encode(Type t, GenericRecord r) {
      buffer.reset();
      buffer.write(0);
      buffer.write((t.id >>> 24) & 0xff);
      buffer.write((t.id >>> 16) & 0xff);
      buffer.write((t.id >>> 8) & 0xff);
      buffer.write(t.id & 0xff);
      encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
      try {
        t.writer.write(r, encoder);
        encoder.flush();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buffer.toByteArray();
    }

    /** The envelope of an event caused by a command, as flexchain's processor writes it. */
    GenericRecord envelope(GenericRecord cause, String eventType, String aggregate, long version) {
      String commandId = cause.get("event_id").toString();
      GenericData.Record env = new GenericData.Record(envelopeSchema);
      env.put("event_id", uuid5(namespace, scope + "/" + commandId + "/0").toString());
      env.put("event_type", eventType);
      env.put("aggregate_id", aggregate);
      env.put("aggregate_version", version);
      env.put("business_time", cause.get("business_time"));
      env.put("correlation_id", cause.get("correlation_id").toString());
      env.put("causation_id", commandId);
      env.put("producer", producer);
      return env;
    }

    /** RFC 4122 name-based (SHA-1) UUID, as Python's uuid.uuid5. */
    static UUID uuid5(UUID ns, String name) {
      MessageDigest sha1;
      try {
        sha1 = MessageDigest.getInstance("SHA-1");
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
      sha1.update(ByteBuffer.allocate(16).putLong(ns.getMostSignificantBits()).putLong(ns.getLeastSignificantBits()).array());
      byte[] h = sha1.digest(name.getBytes(StandardCharsets.UTF_8));
      h[6] = (byte) ((h[6] & 0x0f) | 0x50);
      h[8] = (byte) ((h[8] & 0x3f) | 0x80);
      ByteBuffer b = ByteBuffer.wrap(h, 0, 16);
      return new UUID(b.getLong(), b.getLong());
    }
  }
}
