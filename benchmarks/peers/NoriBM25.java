// Lucene 8 with its Korean analyzer (nori) and BM25: what an Elasticsearch index with the nori
// analyzer runs, set up as the competition's teams set it (decompound_mode "mixed", nori's default
// part-of-speech stop tags, reading form, lower case; BM25 k1 1.2, b 0.75 as Elasticsearch's
// defaults), queried as Elasticsearch's `match` query builds its query (Lucene's QueryBuilder:
// analysed terms OR-ed, tokens at one position as a synonym query). Built by retrieval_ko.py:
//
//   java -cp JARS:. NoriBM25 index PASSAGES.txt INDEX_DIR THREADS
//   java -cp JARS:. NoriBM25 search INDEX_DIR QUERIES.txt OUT.txt THREADS K K1 B
//
// PASSAGES.txt and QUERIES.txt hold one text per line (line number = id); OUT.txt gets, per
// query, the ids of its top K passages separated by spaces; the search prints its seconds (the
// whole batch after a warm-up on the first 20 queries, as the other systems are timed).

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.ko.KoreanAnalyzer;
import org.apache.lucene.analysis.ko.KoreanPartOfSpeechStopFilter;
import org.apache.lucene.analysis.ko.KoreanTokenizer;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.MatchNoDocsQuery;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.similarities.BM25Similarity;
import org.apache.lucene.store.FSDirectory;
import org.apache.lucene.util.QueryBuilder;

public class NoriBM25 {
    static Analyzer analyzer() {
        return new KoreanAnalyzer(null, KoreanTokenizer.DecompoundMode.MIXED,
                KoreanPartOfSpeechStopFilter.DEFAULT_STOP_TAGS, false);
    }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("index")) {
            index(args[1], args[2], Integer.parseInt(args[3]));
        } else {
            search(args[1], args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]),
                    Float.parseFloat(args[6]), Float.parseFloat(args[7]));
        }
    }

    static void index(String passages, String out, int threads) throws Exception {
        List<String> texts = Files.readAllLines(Paths.get(passages), StandardCharsets.UTF_8);
        IndexWriterConfig config = new IndexWriterConfig(analyzer());
        config.setSimilarity(new BM25Similarity(1.2f, 0.75f));
        config.setRAMBufferSizeMB(512);
        try (IndexWriter writer = new IndexWriter(FSDirectory.open(Paths.get(out)), config)) {
            AtomicInteger next = new AtomicInteger();
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            List<Future<?>> jobs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                jobs.add(pool.submit(() -> {
                    for (int i = next.getAndIncrement(); i < texts.size(); i = next.getAndIncrement()) {
                        Document doc = new Document();
                        doc.add(new StoredField("id", i));
                        doc.add(new TextField("contents", texts.get(i), Field.Store.NO));
                        writer.addDocument(doc);
                    }
                    return null;
                }));
            }
            for (Future<?> job : jobs) job.get();
            pool.shutdown();
            writer.forceMerge(1);
        }
    }

    static void search(String index, String queries, String out, int threads, int k, float k1, float b)
            throws Exception {
        List<String> texts = Files.readAllLines(Paths.get(queries), StandardCharsets.UTF_8);
        DirectoryReader reader = DirectoryReader.open(FSDirectory.open(Paths.get(index)));
        IndexSearcher searcher = new IndexSearcher(reader);
        searcher.setSimilarity(new BM25Similarity(k1, b));
        QueryBuilder warm = new QueryBuilder(analyzer());
        for (int i = 0; i < Math.min(20, texts.size()); i++) {
            Query query = warm.createBooleanQuery("contents", texts.get(i));
            if (query != null) searcher.search(query, k);
        }
        String[] results = new String[texts.size()];
        AtomicInteger next = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        List<Future<?>> jobs = new ArrayList<>();
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
            jobs.add(pool.submit(() -> {
                QueryBuilder builder = new QueryBuilder(analyzer());
                for (int i = next.getAndIncrement(); i < texts.size(); i = next.getAndIncrement()) {
                    Query query = builder.createBooleanQuery("contents", texts.get(i));
                    if (query == null) query = new MatchNoDocsQuery();
                    StringBuilder line = new StringBuilder();
                    for (ScoreDoc hit : searcher.search(query, k).scoreDocs) {
                        if (line.length() > 0) line.append(' ');
                        line.append(searcher.doc(hit.doc).getField("id").numericValue().intValue());
                    }
                    results[i] = line.toString();
                }
                return null;
            }));
        }
        for (Future<?> job : jobs) job.get();
        pool.shutdown();
        double seconds = (System.nanoTime() - start) / 1e9;
        try (BufferedWriter writer = Files.newBufferedWriter(Paths.get(out), StandardCharsets.UTF_8)) {
            for (String line : results) {
                writer.write(line);
                writer.newLine();
            }
        }
        System.out.println(seconds);
    }
}
